/**
 * An exclusive lock on the KV store's own file, so that a second daemon started on the same
 * store refuses to start instead of contending for it (one process owns a KV file). The lock is
 * the kernel's (flock) on the very file the store lives in: no side file that could be deleted
 * away, and it goes away by itself when the owner dies, even by SIGKILL. flock locks are apart
 * from the POSIX record locks SQLite takes on the same file; the descriptor stays open until
 * the store is closed (closing any descriptor of the file would drop SQLite's own locks).
 *
 * @module
 */

import * as libc from "./libc.ts";

/** A held lock; release it on shutdown, after the store is closed. */
export interface HeldLock {
  /** The locked file's path. */
  path: string;
  /** Releases the lock and closes the file. */
  release(): void;
}

/**
 * Takes the lock on the file at `path` (created empty, 0600, if missing; never through a
 * symlink) without waiting, or returns the pid of the process that holds it (null when it
 * cannot be told). Nothing is written to the file.
 *
 * @throws {SysError} when the file cannot be opened or created (read-only file system…).
 */
export function tryLock(path: string): HeldLock | { heldBy: number | null } {
  const fd = libc.open(path, libc.O.RDWR | libc.O.CLOEXEC | libc.O.NOFOLLOW | libc.O.CREAT, 0o600);
  let locked: boolean;
  try {
    locked = libc.tryLockExclusive(fd);
  } catch (error) {
    libc.close(fd);
    throw error;
  }
  if (!locked) {
    libc.close(fd);
    return { heldBy: lockHolder(path) };
  }
  let released = false;
  return {
    path,
    release: () => {
      if (released) return;
      released = true;
      libc.close(fd);
    },
  };
}

/** The pid holding a flock on the file at `path`, read from /proc/locks; null if unknown. */
function lockHolder(path: string): number | null {
  try {
    const { ino, dev } = Deno.statSync(path);
    if (ino === null || dev === null) return null;
    // An inode number names a file only together with its device, as /proc/locks gives both.
    const file = `${hex2(devMajor(dev))}:${hex2(devMinor(dev))}:${ino}`;
    for (const line of Deno.readTextFileSync("/proc/locks").split("\n")) {
      // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (waiters have a "->" field more).
      const fields = line.trim().split(/\s+/).filter((f) => f !== "->");
      if (fields[1] === "FLOCK" && fields[5] === file) {
        const pid = Number(fields[4]);
        if (Number.isSafeInteger(pid) && pid > 0) return pid;
      }
    }
  } catch {
    // The holder is simply unknown.
  }
  return null;
}

/** The major number of a Linux `dev_t` (glibc's gnu_dev_major). */
function devMajor(dev: number): number {
  return Number(((BigInt(dev) >> 8n) & 0xfffn) | ((BigInt(dev) >> 32n) & ~0xfffn));
}

/** The minor number of a Linux `dev_t` (glibc's gnu_dev_minor). */
function devMinor(dev: number): number {
  return Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & ~0xffn));
}

/** At least two lowercase hex digits, as /proc/locks prints device numbers. */
function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
