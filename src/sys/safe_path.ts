/**
 * Path resolution that never follows a symlink, and the unmount and unlink calls built on it.
 * A container's registered paths may lie under directories their owner can rename and replace
 * with symlinks at any time; resolved the ordinary way, a root-run cleanup would then unmount
 * or delete whatever the symlink points at. Here every path is opened with `openat2` and
 * `RESOLVE_NO_SYMLINKS` (and `RESOLVE_BENEATH` below a known root), and every later call acts
 * on the descriptor or relative to the parent's descriptor, never on the path again.
 *
 * These calls can block for as long as the filesystem under the path does (a FUSE server that
 * never answers, a dead NFS server). They are meant for a helper process, never the daemon.
 *
 * @module
 */

import { Errno, SysError } from "./errno.ts";
import * as libc from "./libc.ts";

const { O } = libc;
const AT_FDCWD = -100;
const AT_REMOVEDIR = 0x200;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
// STATX_TYPE | STATX_MODE | STATX_UID
const STATX_WANTED = 0x1 | 0x2 | 0x8;
const STATX_UID_OFFSET = 20;
const STATX_SIZE = 256;
const STATX_ATTRIBUTES_OFFSET = 8;
const STATX_MODE_OFFSET = 28;
const STATX_ATTRIBUTES_MASK_OFFSET = 56;
const STATX_ATTR_MOUNT_ROOT = 0x2000n;

/** AT_FDCWD: an absolute path needs no directory fd. */
export const CWD = AT_FDCWD;
const UMOUNT_NOFOLLOW = 8;

/** `resolve` flags of openat2(2). */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
} as const;

/** File types as st_mode & S_IFMT. */
export const FileType = {
  FIFO: 0o010000,
  DIRECTORY: 0o040000,
  REGULAR: 0o100000,
  SYMLINK: 0o120000,
  SOCKET: 0o140000,
} as const;

/**
 * openat2(2) of `path` relative to `dirFd` (AT_FDCWD for an absolute path) with `resolve`
 * flags; RESOLVE_NO_SYMLINKS is always added. A symlink anywhere on the way, the last
 * component included, fails with ELOOP. Returns the fd (close-on-exec).
 */
export function openNoFollow(
  dirFd: number,
  path: string,
  flags: number,
  resolve = 0,
): number {
  return libc.openat2(dirFd, path, flags | O.CLOEXEC, resolve | RESOLVE.NO_SYMLINKS);
}

/** An O_PATH descriptor of the directory `path`, resolved without following any symlink. */
export function openDirNoFollow(path: string, dirFd = AT_FDCWD, resolve = 0): number {
  return openNoFollow(dirFd, path, O.PATH | O.DIRECTORY, resolve);
}

/** close(2). */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** What statx says of one file, as far as cleanup cares. */
export interface FileFacts {
  /** st_mode & S_IFMT (see {@linkcode FileType}). */
  type: number;
  /** True when the file is the root of a mount (something is mounted there). */
  mountRoot: boolean;
  /** The permission bits (mode & 0o7777). */
  permissions: number;
  /** The owner's uid. */
  uid: number;
}

/**
 * statx(2) of `name` in `dirFd`, not following a symlink; an empty `name` means the fd itself.
 * Throws SysError (ENOENT when there is no such entry).
 */
export function factsAt(dirFd: number, name: string): FileFacts {
  const buf = new Uint8Array(STATX_SIZE);
  const flags = AT_SYMLINK_NOFOLLOW | (name === "" ? AT_EMPTY_PATH : 0);
  libc.statx(dirFd, name, flags, STATX_WANTED, buf, name || `fd ${dirFd}`);
  const view = new DataView(buf.buffer);
  const attributes = view.getBigUint64(STATX_ATTRIBUTES_OFFSET, true);
  const known = view.getBigUint64(STATX_ATTRIBUTES_MASK_OFFSET, true);
  if ((known & STATX_ATTR_MOUNT_ROOT) === 0n) {
    // Kernels before 5.8 do not say; guessing "not mounted" could delete through a mount.
    throw new SysError("statx", Errno.ENOSYS, "STATX_ATTR_MOUNT_ROOT unsupported");
  }
  return {
    type: view.getUint16(STATX_MODE_OFFSET, true) & libc.S_IFMT,
    permissions: view.getUint16(STATX_MODE_OFFSET, true) & 0o7777,
    uid: view.getUint32(STATX_UID_OFFSET, true),
    mountRoot: (attributes & STATX_ATTR_MOUNT_ROOT) !== 0n,
  };
}

/**
 * Opens the parent directory of the absolute `path` without following any symlink, reads what
 * statx says of its last component, and calls `use` with the parent's fd, the component's name
 * and its facts; the fd is closed after. Returns null, without calling `use`, when the parent or
 * the entry is missing. Throws what openat2 and statx throw otherwise (ELOOP, ENOTDIR… for a
 * symlink or a non-directory on the way).
 */
export function atEntry<T>(
  path: string,
  use: (dirFd: number, name: string, facts: FileFacts) => T,
): T | null {
  const { parent, name } = splitParent(path);
  let dirFd: number;
  try {
    dirFd = openDirNoFollow(parent);
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  try {
    let facts;
    try {
      facts = factsAt(dirFd, name);
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
    return use(dirFd, name, facts);
  } finally {
    closeFd(dirFd);
  }
}

/** unlinkat(2) of `name` in `dirFd`: a directory when `dir` (AT_REMOVEDIR), else a file. */
export function unlinkAt(dirFd: number, name: string, dir: boolean): void {
  libc.unlinkat(dirFd, name, dir ? AT_REMOVEDIR : 0);
}

/**
 * Unmounts what is mounted at `name` inside the directory `dirFd` (an fd from
 * {@linkcode openDirNoFollow}): the process's working directory moves to `dirFd` for the call,
 * so that umount2 looks up one component and, with UMOUNT_NOFOLLOW, never follows it if it is
 * a symlink. (A descriptor of the mount itself would keep the mount busy.) The working
 * directory is put back before returning. Plain umount2, no lazy detach: EBUSY is thrown as a
 * {@linkcode SysError}, EINVAL means nothing is mounted there.
 */
export function unmountAt(dirFd: number, name: string, shownAs: string): void {
  if (name === "" || name.includes("/") || name === "." || name === "..") {
    throw new SysError("umount2", Errno.EINVAL, `${shownAs}: not a single path component`);
  }
  const here = openNoFollow(CWD, ".", O.PATH | O.DIRECTORY, RESOLVE.NO_MAGICLINKS);
  try {
    libc.fchdir(dirFd, shownAs);
    try {
      libc.umount(name, UMOUNT_NOFOLLOW, shownAs);
    } finally {
      libc.fchdir(here, "the previous working directory");
    }
  } finally {
    libc.close(here);
  }
}

/** The last component of an absolute, normalized path, and the path of its parent. */
export function splitParent(path: string): { parent: string; name: string } {
  const trimmed = path.replace(/(.)\/+$/, "$1");
  const at = trimmed.lastIndexOf("/");
  return { parent: at <= 0 ? "/" : trimmed.slice(0, at), name: trimmed.slice(at + 1) };
}

/** True for the errors a symlink (or a non-directory) on the way gives: ELOOP, ENOTDIR. */
export function isUnsafeResolution(e: unknown): e is SysError {
  return e instanceof SysError && (e.errno === Errno.ELOOP || e.errno === Errno.ENOTDIR);
}

/** True for ENOENT. */
export function isMissing(e: unknown): e is SysError {
  return e instanceof SysError && e.errno === Errno.ENOENT;
}
