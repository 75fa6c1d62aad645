/**
 * The exit FIFO of a container (seed `exit_fifo_name`, `container_exit_fifo_create`,
 * `container_exit_fifo_open`): `<stateDir>/exit_fifo`, mode 0600 in a 0700 dir, opened by the
 * daemon read-only, non-blocking and close-on-exec, never through a symlink, and only when it
 * really is a FIFO.
 *
 * @module
 */

import { Errno, SysError } from "../sys/errno.ts";
import * as libc from "../sys/libc.ts";

/** The FIFO's file name inside a state dir. */
export const EXIT_FIFO = "exit_fifo";
const PATH_MAX = 4096;

/** A state dir or FIFO that cannot be used, with a one-line reason. */
export class ExitFifoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExitFifoError";
  }
}

/**
 * `<stateDir>/exit_fifo`. Rejects a state dir that is not absolute, holds NUL, or gives a path
 * of PATH_MAX or longer.
 */
export function exitFifoName(stateDir: string): string {
  if (typeof stateDir !== "string" || !stateDir.startsWith("/")) {
    throw new ExitFifoError(`state dir must be an absolute path, got ${JSON.stringify(stateDir)}`);
  }
  if (stateDir.includes("\0")) throw new ExitFifoError("state dir must not contain NUL");
  if (stateDir.split("/").includes("..")) {
    throw new ExitFifoError(`state dir must not contain "..": ${stateDir}`);
  }
  const path = `${stateDir.replace(/\/+$/, "")}/${EXIT_FIFO}`;
  if (new TextEncoder().encode(path).length >= PATH_MAX) {
    throw new ExitFifoError(`exit FIFO path is too long (PATH_MAX ${PATH_MAX})`);
  }
  return path;
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symlink";
  if (info.isFile) return "a regular file";
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  return "not a FIFO";
}

/**
 * Creates the state dir (0700, parents as needed) and the FIFO in it (0600). An existing FIFO
 * is reused; a state dir or FIFO path that is anything else (symlink, file…) is an error.
 * Returns the FIFO's path.
 */
export function createExitFifo(stateDir: string): string {
  const fifo = exitFifoName(stateDir);
  const dir = lstatOrNull(stateDir);
  if (dir === null) {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } else if (!dir.isDirectory) {
    throw new ExitFifoError(`state dir ${stateDir} is ${kindOf(dir)}, not a directory`);
  }
  try {
    libc.mkfifo(fifo, 0o600);
  } catch (e) {
    if (!(e instanceof SysError && e.errno === Errno.EEXIST)) {
      throw new ExitFifoError(`cannot create ${fifo}: ${(e as Error).message}`);
    }
    const info = lstatOrNull(fifo);
    if (info === null || !info.isFifo) {
      throw new ExitFifoError(`${fifo} exists and is ${info ? kindOf(info) : "gone"}`);
    }
  }
  return fifo;
}

/**
 * Opens the read end of an exit FIFO: `O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW`, then checks
 * with fstat that it is a FIFO. Returns the fd, which the caller owns and must close.
 */
export function openExitFifo(fifo: string): number {
  // Look before opening so that a device is never opened (opening can have side effects);
  // the fstat after the open closes the race with a swap in between.
  const info = lstatOrNull(fifo);
  if (info === null) throw new ExitFifoError(`exit FIFO ${fifo} does not exist`);
  if (!info.isFifo) throw new ExitFifoError(`exit FIFO ${fifo} is ${kindOf(info)}, not a FIFO`);
  let fd: number;
  try {
    fd = libc.open(fifo, libc.O.RDONLY | libc.O.NONBLOCK | libc.O.CLOEXEC | libc.O.NOFOLLOW);
  } catch (e) {
    if (e instanceof SysError && e.errno === Errno.ELOOP) {
      throw new ExitFifoError(`exit FIFO ${fifo} is a symlink, not a FIFO`);
    }
    if (e instanceof SysError && e.errno === Errno.ENOENT) {
      throw new ExitFifoError(`exit FIFO ${fifo} does not exist`);
    }
    throw new ExitFifoError(`cannot open ${fifo}: ${(e as Error).message}`);
  }
  try {
    if (libc.fileTypeOfFd(fd) !== libc.S_IFIFO) {
      throw new ExitFifoError(`exit FIFO ${fifo} is not a FIFO`);
    }
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}
