/**
 * Process identity from `/proc`: a process is (pid, start time), the start time being field 22
 * of `/proc/<pid>/stat`, parsed after the last `)` so that a command name holding spaces or
 * parentheses cannot shift the fields.
 *
 * @module
 */

import type { ProcessIdentity } from "../types.ts";
import { readFileInto } from "./libc.ts";

/** What reaperd reads from `/proc/<pid>/stat`. */
export interface ProcStat {
  pid: number;
  /** The command name between the parentheses. */
  comm: string;
  /** State char: R, S, D (uninterruptible), Z (zombie), T (stopped), … */
  state: string;
  ppid: number;
  /** Field 22: start time in clock ticks since boot. */
  startTime: number;
}

/** True when `pid` could name a real process: an integer > 0. Nothing may signal pid ≤ 0. */
export function isValidPid(pid: unknown): pid is number {
  return typeof pid === "number" && Number.isSafeInteger(pid) && pid > 0 &&
    pid <= 0x3fffffff;
}

/** Throws a RangeError unless `pid` is a valid pid (see {@linkcode isValidPid}). */
export function assertValidPid(pid: unknown, what = "pid"): asserts pid is number {
  if (!isValidPid(pid)) throw new RangeError(`${what} must be a positive integer, got ${pid}`);
}

/**
 * Parses the text of `/proc/<pid>/stat`. Returns null when it is not a stat line.
 *
 * @example
 * ```ts
 * import { parseProcStat } from "./proc.ts";
 * const s = parseProcStat("42 (a) b) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0");
 * console.assert(s?.comm === "a) b" && s.startTime === 777);
 * ```
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  // Fields after the comm start at field 3 (state); field 22 is index 19 of this list.
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTime = Number(rest[19]);
  if (
    !isValidPid(pid) || state === undefined || !/^[A-Za-z]$/.test(state) ||
    !Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTime) || startTime < 0
  ) {
    return null;
  }
  return { pid, comm: text.slice(open + 1, close), state, ppid, startTime };
}

/**
 * Reads `/proc/<pid>/stat`; null when the process does not exist (or pid is not valid).
 * Throws when the read is refused (an unprivileged daemon reading another user's process
 * gets its stat, so a refusal means something is wrong), rather than calling it gone.
 */
export function readProcStat(pid: number): ProcStat | null {
  if (!isValidPid(pid)) return null;
  const text = readProcText(`/proc/${pid}/stat`);
  return text === null ? null : parseProcStat(text);
}

const procBuf = new Uint8Array(64 * 1024);
const decoder = new TextDecoder();

/**
 * The text of a kernel file of at most 64 KiB (`/proc/<pid>/stat`, `/proc/<pid>/cgroup`, a
 * memory cgroup's counters), or null when it is not there: the process or cgroup is gone.
 * Synchronous on purpose: procfs and cgroupfs answer at once, and the blocking pool is kept for
 * others.
 */
export function readProcText(path: string): string | null {
  const n = readFileInto(path, procBuf);
  return n === null ? null : decoder.decode(procBuf.subarray(0, n));
}

/**
 * True when the process named by (pid, start time) exists: the pid is valid, /proc has it, and
 * its start time matches exactly (a reused pid does not). Zombies count as alive.
 */
export function isAlive(id: ProcessIdentity): boolean {
  if (!isValidPid(id.pid)) return false;
  const stat = readProcStat(id.pid);
  return stat !== null && stat.startTime === id.startTime;
}

/** The identity of a live process, for callers that were given only its pid. */
export function identify(pid: number): ProcessIdentity | null {
  const stat = readProcStat(pid);
  return stat === null ? null : { pid: stat.pid, startTime: stat.startTime };
}
