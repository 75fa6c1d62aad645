/**
 * Raises the open-file limit so that ten thousand exit FIFOs and their pidfds fit: each
 * monitored container costs two descriptors.
 *
 * @module
 */

import { getFdLimit, setFdLimit } from "./libc.ts";

/**
 * Raises RLIMIT_NOFILE's soft limit to `want` (raising the hard limit too where the process
 * may, as root can up to /proc/sys/fs/nr_open). Returns the soft limit now in force; never
 * lowers anything.
 */
export function raiseFdLimit(want = 1 << 20): number {
  const { soft, hard } = getFdLimit();
  if (soft >= want) return soft;
  let ceiling = want;
  try {
    ceiling = Math.min(want, Number(Deno.readTextFileSync("/proc/sys/fs/nr_open").trim()));
  } catch {
    // Not Linux-like procfs: keep `want` and let setrlimit say no.
  }
  if (ceiling > hard) {
    try {
      setFdLimit(ceiling, ceiling);
      return ceiling;
    } catch {
      // Not privileged: fall back to the hard limit.
    }
  }
  const target = Math.min(ceiling, hard);
  if (target > soft) setFdLimit(target, hard);
  return Math.max(target, soft);
}

/** How many file descriptors this process holds now (entries of /proc/self/fd). */
export function openFdCount(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  return n;
}
