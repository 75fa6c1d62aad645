/**
 * Removing a container's state dir without ever deleting what is not ours. A recursive remove
 * walks into whatever is mounted below it, so a forgotten bind mount of a host directory would
 * be emptied; the dir is therefore refused while any mount lies at or under it, and refused
 * outright when it is not a real directory inside the configured state root, reached without
 * a symlink.
 *
 * @module
 */

import { posix } from "node:path";
import { Errno, SysError } from "../sys/errno.ts";
import { isAtOrUnder, type MountInfo, readMountInfo } from "../sys/mounts.ts";
import {
  closeFd,
  factsAt,
  FileType,
  isMissing,
  isUnsafeResolution,
  openDirNoFollow,
  RESOLVE,
  splitParent,
  unlinkAt,
} from "../sys/safe_path.ts";
import { errorMessage } from "../error_message.ts";

/** What {@linkcode removeStateDir} did. */
export type StateDirOutcome =
  | { ok: true; detail: "removed" | "already gone" }
  | { ok: false; code: "EBUSY" | "EINVAL" | "EIO"; detail: string };

/**
 * Why `stateDir` may not be removed as a state dir of `stateRoot`, judged on the path alone:
 * it must be absolute, already normalized (no `.`, `..` or `//`), and strictly inside the root.
 * Null when it may.
 */
export function stateDirPathProblem(stateDir: string, stateRoot: string): string | null {
  if (!stateDir.startsWith("/")) return `state dir ${JSON.stringify(stateDir)} is not absolute`;
  if (!stateRoot.startsWith("/")) return `state root ${JSON.stringify(stateRoot)} is not absolute`;
  const dir = stateDir.replace(/\/+$/, "");
  if (posix.normalize(dir) !== dir || dir.includes("\0")) {
    return `state dir ${JSON.stringify(stateDir)} is not a normalized path`;
  }
  const root = posix.normalize(stateRoot).replace(/\/+$/, "");
  if (!isAtOrUnder(dir, root) || dir === root) {
    return `state dir ${stateDir} is not inside the state root ${stateRoot}`;
  }
  return null;
}

/**
 * Removes `stateDir` recursively, after checking that it lies inside `stateRoot`, is a real
 * directory and has no mount at or under it. A missing dir is success. Never throws.
 *
 * Nothing on the way is followed if it is a symlink: the root is resolved once (it is the
 * daemon's own config), the dir is opened beneath it with `RESOLVE_BENEATH` and
 * `RESOLVE_NO_SYMLINKS`, and its tree is removed through directory descriptors, entry by
 * entry relative to its parent's descriptor; a directory on another mount is never entered
 * (`RESOLVE_NO_XDEV`). May block as long as the filesystem under the dir does: call it from a
 * helper process.
 */
export function removeStateDir(
  stateDir: string,
  stateRoot: string,
  readMounts: () => MountInfo[] = readMountInfo,
): StateDirOutcome {
  const problem = stateDirPathProblem(stateDir, stateRoot);
  if (problem !== null) return { ok: false, code: "EINVAL", detail: problem };
  const dir = stateDir.replace(/\/+$/, "");
  const root = posix.normalize(stateRoot).replace(/\/+$/, "");
  const relative = dir.slice(root.length + 1);
  const { parent, name } = splitParent(`/${relative}`);

  let realRoot: string;
  try {
    realRoot = Deno.realPathSync(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { ok: true, detail: "already gone" };
    return { ok: false, code: "EIO", detail: `realpath ${root}: ${errorMessage(e)}` };
  }
  const fds: number[] = [];
  try {
    const rootFd = open(() => openDirNoFollow(realRoot), fds);
    const parentFd = parent === "/"
      ? rootFd
      : open(() => openDirNoFollow(parent.slice(1), rootFd, RESOLVE.BENEATH), fds);
    const facts = factsAt(parentFd, name);
    if (facts.type === FileType.SYMLINK) {
      return { ok: false, code: "EINVAL", detail: `state dir ${stateDir} is a symlink; refusing` };
    }
    if (facts.type !== FileType.DIRECTORY) {
      return { ok: false, code: "EINVAL", detail: `state dir ${stateDir} is not a directory` };
    }

    let mounted: MountInfo[];
    try {
      const spellings = [dir, `${realRoot}/${relative}`];
      mounted = readMounts()
        .filter((m) => spellings.some((d) => isAtOrUnder(m.mountPoint, d)))
        .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
    } catch (e) {
      // Without the mount table it is unknown whether the remove would cross into a mount.
      return { ok: false, code: "EIO", detail: `mountinfo: ${errorMessage(e)}` };
    }
    if (mounted.length > 0 || facts.mountRoot) {
      const list = mounted.map((m) => m.mountPoint).join(", ") || dir;
      return {
        ok: false,
        code: "EBUSY",
        detail: `EBUSY: refusing to remove ${stateDir}: ${mounted.length || 1} mount(s) at or ` +
          `under it: ${list}`,
      };
    }
    const dirFd = open(() => openDirNoFollow(name, parentFd, BENEATH_SAME_MOUNT), fds);
    removeTree(dirFd, dir, 0);
    unlinkAt(parentFd, name, true);
    return { ok: true, detail: "removed" };
  } catch (e) {
    if (isMissing(e)) return { ok: true, detail: "already gone" };
    if (isUnsafeResolution(e)) {
      return {
        ok: false,
        code: "EINVAL",
        detail: `state dir ${stateDir}: a component below the state root is a symlink or not ` +
          `a directory (${e.code}); refusing`,
      };
    }
    if (e instanceof SysError && (e.errno === Errno.EBUSY || e.errno === Errno.EXDEV)) {
      return {
        ok: false,
        code: "EBUSY",
        detail: `EBUSY: refusing to remove ${stateDir}: ${e.message}`,
      };
    }
    return { ok: false, code: "EIO", detail: `remove ${stateDir}: ${errorMessage(e)}` };
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}

const BENEATH_SAME_MOUNT = RESOLVE.BENEATH | RESOLVE.NO_XDEV;
// A state dir holds a runtime's few levels; deeper than this is not a container's doing.
const MAX_DEPTH = 32;

function open(opener: () => number, fds: number[]): number {
  const fd = opener();
  fds.push(fd);
  return fd;
}

/** Empties the directory `dirFd` (shown as `shownAs`), never leaving its mount. */
function removeTree(dirFd: number, shownAs: string, depth: number): void {
  if (depth > MAX_DEPTH) {
    throw new SysError("remove", Errno.ELOOP, `${shownAs}: deeper than ${MAX_DEPTH} levels`);
  }
  // The fd's magic link names exactly this directory, wherever its path now leads.
  for (const entry of Deno.readDirSync(`/proc/self/fd/${dirFd}`)) {
    let facts;
    try {
      facts = factsAt(dirFd, entry.name);
    } catch (e) {
      if (isMissing(e)) continue;
      throw e;
    }
    const path = `${shownAs}/${entry.name}`;
    if (facts.type !== FileType.DIRECTORY) {
      unlinkAt(dirFd, entry.name, false);
      continue;
    }
    if (facts.mountRoot) throw new SysError("remove", Errno.EBUSY, `${path} is a mount point`);
    const child = openDirNoFollow(entry.name, dirFd, BENEATH_SAME_MOUNT);
    try {
      removeTree(child, path, depth + 1);
    } finally {
      closeFd(child);
    }
    unlinkAt(dirFd, entry.name, true);
  }
}
