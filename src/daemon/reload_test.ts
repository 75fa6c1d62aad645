import assert from "node:assert/strict";
import { defaultConfig, type HttpConfig, type LogLevel } from "../config.ts";
import { applyReload } from "./reload.ts";

const env = { uid: 0, getEnv: () => undefined, lookPath: () => null };

Deno.test("applyReload() applies the log level and http limits, and names the rest", () => {
  const current = defaultConfig(env);
  const next = {
    ...current,
    logLevel: "debug" as const,
    http: { ...current.http, maxConnections: 10, responseTimeoutMs: 5000 },
    gc: { ...current.gc, concurrency: 2 },
    runtimes: { runc: { path: "/usr/sbin/runc", args: [] } },
    source: "/etc/reaperd/reaperd.json",
  };
  const levels: LogLevel[] = [];
  const limits: HttpConfig[] = [];
  const outcome = applyReload(current, next, {
    setLogLevel: (l) => levels.push(l),
    setHttpLimits: (h) => limits.push(h),
  });
  assert.deepEqual(outcome.applied, [
    "http.maxConnections",
    "http.responseTimeoutMs",
    "logLevel",
  ]);
  assert.deepEqual(outcome.needsRestart, ["gc.concurrency", "runtimes"]);
  assert.deepEqual(levels, ["debug"]);
  assert.deepEqual(limits, [next.http]);
  assert.equal(outcome.config.logLevel, "debug");
  assert.equal(outcome.config.gc.concurrency, current.gc.concurrency);
});

Deno.test("applyReload() of the same config changes nothing", () => {
  const current = defaultConfig(env);
  const outcome = applyReload(current, { ...current, source: "/x" }, {
    setLogLevel: () => assert.fail("log level set"),
    setHttpLimits: () => assert.fail("limits set"),
  });
  assert.deepEqual(outcome, { applied: [], needsRestart: [], config: current });
});
