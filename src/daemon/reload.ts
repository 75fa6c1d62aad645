/**
 * What a SIGHUP changes in a running daemon. Only settings that can change under running work
 * without leaving anything half-applied are taken live: the log level and the socket API's
 * limits (`http.maxConnections`, `http.idleTimeoutMs`, `http.responseTimeoutMs`). Everything
 * else (paths, runtimes, GC knobs, retention, held-FIFO timeout, event log size) is read at
 * start only: a changed value is named in the log as needing a restart, and the running value
 * stays.
 *
 * @module
 */

import type { Config, HttpConfig, LogLevel } from "../config.ts";

/** Where a reload's values go. */
export interface ReloadTargets {
  setLogLevel(level: LogLevel): void;
  setHttpLimits(limits: HttpConfig): void;
}

/** What a reload did. */
export interface ReloadOutcome {
  /** Keys whose new value is in force now. */
  applied: string[];
  /** Keys whose value changed in the file but only takes effect after a restart. */
  needsRestart: string[];
  /** The configuration now in force (the running one with the applied keys changed). */
  config: Config;
}

/** Flattens a config to `key.path → JSON value` for comparison. */
function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    // The runtimes map is compared whole: a runtime is one unit to an operator.
    if (prefix === "runtimes" || entries.length === 0) {
      out.set(prefix, JSON.stringify(value));
      return;
    }
    for (const [key, inner] of entries) {
      flatten(inner, prefix === "" ? key : `${prefix}.${key}`, out);
    }
    return;
  }
  out.set(prefix, JSON.stringify(value));
}

/**
 * Applies what may change live from `next` onto the running `current`, through `targets`, and
 * reports the rest. `source` (which file was read) is not a setting and is never reported.
 */
export function applyReload(current: Config, next: Config, targets: ReloadTargets): ReloadOutcome {
  const before = new Map<string, string>();
  const after = new Map<string, string>();
  flatten({ ...current, source: null }, "", before);
  flatten({ ...next, source: null }, "", after);
  const changed = new Set<string>();
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(key) !== after.get(key)) changed.add(key);
  }
  const applied: string[] = [];
  const config: Config = { ...current, http: { ...current.http } };
  if (changed.has("logLevel")) {
    targets.setLogLevel(next.logLevel);
    config.logLevel = next.logLevel;
    applied.push("logLevel");
  }
  const httpKeys = [...changed].filter((k) => k.startsWith("http."));
  if (httpKeys.length > 0) {
    targets.setHttpLimits({ ...next.http });
    config.http = { ...next.http };
    applied.push(...httpKeys);
  }
  const needsRestart = [...changed].filter((k) => !applied.includes(k)).sort();
  return { applied: applied.sort(), needsRestart, config };
}
