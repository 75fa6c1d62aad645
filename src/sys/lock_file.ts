/**
 * An exclusive lock on a file beside the KV store, so that a second daemon started on the same
 * store refuses to start instead of contending for it (one process owns a KV file). The lock
 * is the kernel's (flock), so it goes away by itself when the owner dies, even by SIGKILL.
 *
 * @module
 */

import * as libc from "./libc.ts";

/** A held lock; release it on shutdown. */
export interface HeldLock {
  /** The lock file's path. */
  path: string;
  /** Releases the lock and closes the file. */
  release(): void;
}

/**
 * Takes the lock at `path` (created 0600 if missing) without waiting, or returns the pid
 * written by its holder when another process has it.
 */
export function tryLock(path: string): HeldLock | { heldBy: number | null } {
  const fd = libc.open(path, libc.O.RDWR | libc.O.CLOEXEC | libc.O.NOFOLLOW | libc.O.CREAT, 0o600);
  if (!libc.tryLockExclusive(fd)) {
    libc.close(fd);
    let heldBy: number | null = null;
    try {
      heldBy = Number(Deno.readTextFileSync(path).trim()) || null;
    } catch {
      // Unreadable: the holder is simply unknown.
    }
    return { heldBy };
  }
  Deno.writeTextFileSync(path, `${Deno.pid}\n`);
  return {
    path,
    release: () => libc.close(fd),
  };
}
