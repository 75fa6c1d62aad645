/**
 * Descriptors handed over by the service manager at start (sd_listen_fds(3)): fds 3… with
 * `$LISTEN_FDS` (how many), `$LISTEN_FDNAMES` (their names, `:`-separated) and `$LISTEN_PID`
 * (whom they are for). They are for this process only when `$LISTEN_PID` is its pid; the
 * variables are removed either way, so that nothing started later takes them for its own.
 *
 * @module
 */

import * as libc from "./libc.ts";

/** The first fd passed (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** The most descriptors a Linux process can hold (`fs.nr_open`'s default): no count passes it. */
const MAX_LISTEN_FDS = 1 << 20;

/** One descriptor handed over, with the name it was stored under ("unknown" when none). */
export interface ListenFd {
  fd: number;
  name: string;
}

/** Reads an environment variable. */
export type EnvReader = (name: string) => string | undefined;

/**
 * Parses the `LISTEN_*` variables. Returns the fds meant for `pid` (none when `LISTEN_PID`
 * names another process or anything is malformed).
 */
export function parseListenFds(getEnv: EnvReader, pid: number): ListenFd[] {
  const count = getEnv("LISTEN_FDS");
  const forPid = getEnv("LISTEN_PID");
  if (count === undefined || forPid === undefined) return [];
  if (!/^\d+$/.test(count) || !/^\d+$/.test(forPid) || Number(forPid) !== pid) return [];
  const n = Number(count);
  if (n > MAX_LISTEN_FDS) return [];
  const names = getEnv("LISTEN_FDNAMES")?.split(":") ?? [];
  return Array.from({ length: n }, (_, i) => ({
    fd: LISTEN_FDS_START + i,
    name: names.length === n && names[i] !== "" ? names[i]! : "unknown",
  }));
}

/**
 * Takes the descriptors the service manager passed to this process: parses the variables,
 * removes them from the environment, and marks each fd close-on-exec so that no helper the
 * daemon starts inherits them.
 */
export function takeListenFds(): ListenFd[] {
  const getEnv = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const fds = parseListenFds(getEnv, Deno.pid);
  for (const name of ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"]) {
    try {
      Deno.env.delete(name);
    } catch {
      // Without env permission there is nothing to clean.
    }
  }
  const usable: ListenFd[] = [];
  for (const entry of fds) {
    try {
      libc.setCloseOnExec(entry.fd);
      usable.push(entry);
    } catch {
      // Not open after all (EBADF): LISTEN_FDS said more than was passed.
    }
  }
  return usable;
}
