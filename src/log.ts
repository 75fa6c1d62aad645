/**
 * Logging for the daemon: @logtape/logtape with one sink that writes one line per record to
 * stderr. Under systemd (stderr connected to the journal) each line starts with the syslog
 * priority `<N>` so `journalctl -p err` works; otherwise it starts with a timestamp and the
 * level. Structured properties are rendered as `key=value` after the message so an operator
 * can grep for `id=web-1`, and newlines are escaped so one record stays one line.
 *
 * ```ts
 * import { configureLogging, getLogger } from "./log.ts";
 * configureLogging({ level: "info" });
 * getLogger("gc").warning("cleanup step failed", { id: "web-1", step: "runtime-delete" });
 * // <4>gc: cleanup step failed id=web-1 step=runtime-delete
 * ```
 *
 * @module
 */

import {
  configureSync,
  getLogger as getLogtapeLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";

export type { Logger, LogLevel };

/** The category every reaperd logger lives under. */
export const ROOT_CATEGORY = "reaperd";

/** Syslog priority per level (sd-daemon(3): 2 crit, 3 err, 4 warning, 6 info, 7 debug). */
export const JOURNAL_PRIORITY: Readonly<Record<LogLevel, number>> = {
  fatal: 2,
  error: 3,
  warning: 4,
  info: 6,
  debug: 7,
  trace: 7,
};

/** Options of {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** Lowest level written. */
  level: LogLevel;
  /** Prefix lines for the journal; detected from `$JOURNAL_STREAM` when absent. */
  journal?: boolean;
  /** Where a finished line (with its "\n") goes; stderr when absent. */
  write?: (line: string) => void;
}

/**
 * Returns the logger for one part of reaperd ("supervisor", "gc", "http"…), a child of the
 * `reaperd` category. Loggers made before {@linkcode configureLogging} work once it has run.
 */
export function getLogger(category: string | readonly string[]): Logger {
  const parts = typeof category === "string" ? [category] : [...category];
  return getLogtapeLogger([ROOT_CATEGORY, ...parts]);
}

/**
 * True when stderr is the journal: `$JOURNAL_STREAM` is `<dev>:<ino>` of the stream systemd
 * connected, and it still matches fd 2 (a child that redirected stderr must not prefix).
 */
export function stderrIsJournal(): boolean {
  try {
    const stream = Deno.env.get("JOURNAL_STREAM");
    if (stream === undefined) return false;
    const [dev, ino] = stream.split(":").map(Number);
    const st = Deno.statSync("/proc/self/fd/2");
    return st.dev === dev && st.ino === ino;
  } catch {
    return false;
  }
}

const encoder = new TextEncoder();

/** Writes all of `line` to stderr synchronously, so records from one process never interleave. */
function writeStderr(line: string): void {
  const bytes = encoder.encode(line);
  try {
    let off = 0;
    while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
  } catch {
    // A closed stderr must not take the daemon down with it.
  }
}

/** Escapes control characters so a value cannot start a new log line or recolour a terminal. */
export function escapeControl(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
    }
  });
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Renders one property value for `key=value`: bare when it is one plain word, else quoted. */
export function renderPropertyValue(value: unknown): string {
  const text = renderValue(value);
  // deno-lint-ignore no-control-regex
  return /^[^\s"=\\\u0000-\u001f\u007f]+$/.test(text) ? text : JSON.stringify(text);
}

/** The text of a record's message, its placeholders filled in. */
function renderMessage(record: LogRecord): string {
  return record.message.map((part, i) => (i % 2 === 0 ? String(part) : renderValue(part))).join(
    "",
  );
}

/** Properties always rendered as `key=value`, so `grep id=web-1` finds every line about it. */
export const GREP_KEYS: ReadonlySet<string> = new Set(["id", "runtime", "step"]);

/**
 * Formats one record as one line (with its trailing newline). `journal` selects the `<N>`
 * prefix instead of the timestamp and level name. Properties follow the message as
 * `key=value`, except those the message already shows through a `{key}` placeholder (unless
 * they are among {@linkcode GREP_KEYS}).
 */
export function formatRecord(record: LogRecord, journal: boolean): string {
  const category = record.category[0] === ROOT_CATEGORY && record.category.length > 1
    ? record.category.slice(1).join(".")
    : record.category.join(".");
  const template = typeof record.rawMessage === "string" ? record.rawMessage : "";
  let line = `${category}: ${renderMessage(record)}`;
  for (const [key, value] of Object.entries(record.properties)) {
    if (value === undefined) continue;
    if (!GREP_KEYS.has(key) && template.includes(`{${key}}`)) continue;
    line += ` ${key}=${renderPropertyValue(value)}`;
  }
  line = escapeControl(line);
  if (journal) return `<${JOURNAL_PRIORITY[record.level]}>${line}\n`;
  const stamp = new Date(record.timestamp).toISOString();
  return `${stamp} ${record.level.toUpperCase().padEnd(7)} ${line}\n`;
}

/** A logtape sink that writes each record as one line. */
export function lineSink(journal: boolean, write: (line: string) => void = writeStderr): Sink {
  return (record) => write(formatRecord(record, journal));
}

/**
 * Sends every reaperd record at `level` or above to stderr (or `options.write`), one line
 * each. Safe to call again: the previous configuration is replaced.
 */
export function configureLogging(options: LoggingOptions): void {
  const journal = options.journal ?? stderrIsJournal();
  configureSync({
    reset: true,
    sinks: { line: lineSink(journal, options.write) },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["line"], lowestLevel: options.level },
      { category: ["logtape", "meta"], sinks: ["line"], lowestLevel: "warning" },
    ],
  });
}

/** Undoes {@linkcode configureLogging}: records are dropped again. */
export function resetLogging(): void {
  resetSync();
}
