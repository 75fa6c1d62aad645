/**
 * The filesystem work of cleanup on a container's own paths: unmount a registered mount,
 * remove a registered path, remove the state dir. Each resolves its path without following
 * symlinks and refuses one it cannot resolve that way. These calls can block for good on a
 * dead filesystem, so the daemon never makes them itself: they run in the path helper
 * (path_helper_main.ts), one request at a time.
 *
 * @module
 */

import { posix } from "node:path";
import { errorMessage } from "../error_message.ts";
import { Errno, SysError } from "../sys/errno.ts";
import { isAtOrUnder, readMountInfo, unmount } from "../sys/mounts.ts";
import {
  atEntry,
  closeFd,
  factsAt,
  FileType,
  isMissing,
  isUnsafeResolution,
  openDirNoFollow,
  splitParent,
  unlinkAt,
} from "../sys/safe_path.ts";
import { removeStateDir } from "./state_dir.ts";

/**
 * One piece of work for the path helper. `root` is the state root: the daemon's own config,
 * so a symlink in it (`/var/run` → `/run`) is followed for a path below it, and nothing else.
 */
export type PathOp =
  | { op: "unmount"; path: string; root?: string }
  | { op: "remove"; path: string; root?: string }
  | { op: "remove-state-dir"; dir: string; root: string };

/** What one {@linkcode PathOp} came to. */
export interface PathOpResult {
  /** Whether the goal is reached (already there counts). */
  ok: boolean;
  /** What was done, or why it failed. */
  detail: string;
  /** The errno name of a failure, when there is one ("EBUSY", "ELOOP"…). */
  code?: string;
}

// A stacked mount point needs one unmount per layer; more than this is not a container's doing.
const MAX_LAYERS = 16;

/** Runs one op in this process. Never throws. */
export function runPathOp(op: PathOp): PathOpResult {
  try {
    switch (op.op) {
      case "unmount":
        return unmountAll(op.path, op.root);
      case "remove":
        return removePath(op.path, op.root);
      case "remove-state-dir": {
        const r = removeStateDir(op.dir, op.root);
        return r.ok
          ? { ok: true, detail: `${op.dir} ${r.detail}` }
          : { ok: false, detail: r.detail, code: r.code };
      }
      default:
        return { ok: false, detail: `unknown path op ${JSON.stringify(op)}`, code: "EINVAL" };
    }
  } catch (e) {
    return { ok: false, detail: errorMessage(e), code: e instanceof SysError ? e.code : "EIO" };
  }
}

/** Why `path` cannot be a registered path at all, or null. */
export function registeredPathProblem(path: string): string | null {
  if (typeof path !== "string" || !path.startsWith("/")) {
    return `${JSON.stringify(path)} is not absolute`;
  }
  if (path.includes("\0") || posix.normalize(path) !== path.replace(/(.)\/+$/, "$1")) {
    return `${JSON.stringify(path)} is not a normalized path`;
  }
  if (path.replace(/\/+$/, "") === "") return `"/" is never a container's path`;
  return null;
}

/**
 * `path` with the state root's part resolved, when it lies below the root; else as it is. The
 * rest of the path is still resolved without following any symlink.
 */
function belowRealRoot(path: string, root: string | undefined): string {
  if (root === undefined || !root.startsWith("/")) return path;
  const base = posix.normalize(root).replace(/\/+$/, "");
  if (base === "" || !isAtOrUnder(path, base) || path === base) return path;
  let real: string;
  try {
    real = Deno.realPathSync(base);
  } catch {
    // No root (yet): the path as given, which then cannot lead anywhere either.
    return path;
  }
  return real.replace(/\/+$/, "") + path.slice(base.length);
}

function refused(path: string, what: string, e: SysError): PathOpResult {
  return {
    ok: false,
    code: e.code,
    detail: `refusing to ${what} ${path}: a component of the path is a symlink or not a ` +
      `directory (${e.code}), so it may no longer lead where it was registered`,
  };
}

/** Unmounts every layer mounted at `path`. */
function unmountAll(path: string, root: string | undefined): PathOpResult {
  const bad = registeredPathProblem(path);
  if (bad !== null) return { ok: false, detail: `mount ${bad}`, code: "EINVAL" };
  const resolved = belowRealRoot(path, root);
  let layers = 0;
  for (;;) {
    let outcome;
    try {
      outcome = unmount(resolved);
    } catch (e) {
      if (isUnsafeResolution(e)) return refused(path, "unmount", e);
      const code = e instanceof SysError ? e.code : "EIO";
      return { ok: false, code, detail: `umount ${path}: ${errorMessage(e)}` };
    }
    if (outcome === "not-mounted") break;
    if (++layers >= MAX_LAYERS) {
      return {
        ok: false,
        code: "EBUSY",
        detail: `${path} is still mounted after ${MAX_LAYERS} unmounts`,
      };
    }
  }
  if (layers === 0) {
    const moved = mountMayHaveMoved(resolved);
    if (moved !== null) return { ok: false, code: "ENOENT", detail: `${path}: ${moved}` };
  }
  return { ok: true, detail: layers > 0 ? `unmounted ${path}` : `${path} not mounted` };
}

/**
 * When the registered mount point is gone, whether its mount may have moved rather than gone:
 * the nearest dir of its path that still exists can be renamed in by someone other than root,
 * and a mount of the same name lies below that dir. Then "not mounted" cannot be trusted, and
 * a reason is returned; null otherwise.
 */
function mountMayHaveMoved(path: string): string | null {
  const { name } = splitParent(path);
  let at = path;
  for (;;) {
    const { parent } = splitParent(at);
    let fd: number;
    try {
      fd = openDirNoFollow(at);
    } catch (e) {
      if (!isMissing(e) || at === "/") return null;
      at = parent;
      continue;
    }
    try {
      if (at === path) return null; // it exists: nothing moved away
      const facts = factsAt(fd, "");
      if (facts.uid === 0 && (facts.permissions & 0o022) === 0) return null;
    } finally {
      closeFd(fd);
    }
    break;
  }
  const suspects = readMountInfo().filter((m) =>
    isAtOrUnder(m.mountPoint, at) && splitParent(m.mountPoint).name === name
  );
  if (suspects.length === 0) return null;
  return `gone, but ${at} (where it was) can be changed by a user other than root and a mount ` +
    `of the same name lies below it (${suspects.map((m) => m.mountPoint).join(", ")}): it may ` +
    `have been moved; refusing to call it unmounted`;
}

/** Removes `path` itself (unlink, or rmdir for a directory; never recursive). */
function removePath(path: string, root: string | undefined): PathOpResult {
  const bad = registeredPathProblem(path);
  if (bad !== null) return { ok: false, detail: `path ${bad}`, code: "EINVAL" };
  let result;
  try {
    result = atEntry(belowRealRoot(path, root), (dirFd, name, facts): PathOpResult => {
      if (facts.type === FileType.SYMLINK) {
        return refused(path, "remove", new SysError("lstat", Errno.ELOOP, path));
      }
      const isDir = facts.type === FileType.DIRECTORY;
      if (isDir && facts.mountRoot) {
        return { ok: false, code: "EBUSY", detail: `remove ${path}: EBUSY: a mount point` };
      }
      try {
        unlinkAt(dirFd, name, isDir);
      } catch (e) {
        if (isMissing(e)) return { ok: true, detail: `${path} already gone` };
        const code = e instanceof SysError ? e.code : "EIO";
        return { ok: false, code, detail: `remove ${path}: ${errorMessage(e)}` };
      }
      return { ok: true, detail: `removed ${path}` };
    });
  } catch (e) {
    if (isUnsafeResolution(e)) return refused(path, "remove", e);
    throw e;
  }
  return result ?? { ok: true, detail: `${path} already gone` };
}
