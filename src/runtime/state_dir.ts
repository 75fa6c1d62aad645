/**
 * Removing a container's state dir without ever deleting what is not ours. A recursive remove
 * walks into whatever is mounted below it, so a forgotten bind mount of a host directory would
 * be emptied; the dir is therefore refused while any mount lies at or under it, and refused
 * outright when it is not a real directory inside the configured state root.
 *
 * @module
 */

import { posix } from "node:path";
import { isAtOrUnder, type MountInfo, mountsAtOrUnder, readMountInfo } from "../sys/mounts.ts";
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
 * Removes `stateDir` recursively, after checking that it lies inside `stateRoot` (also with
 * symlinks resolved), is a directory and not a symlink, and has no mount at or under it. A
 * missing dir is success. Never throws.
 */
export async function removeStateDir(
  stateDir: string,
  stateRoot: string,
  readMounts: () => MountInfo[] = readMountInfo,
): Promise<StateDirOutcome> {
  const problem = stateDirPathProblem(stateDir, stateRoot);
  if (problem !== null) return { ok: false, code: "EINVAL", detail: problem };

  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(stateDir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { ok: true, detail: "already gone" };
    return { ok: false, code: "EIO", detail: `lstat ${stateDir}: ${errorMessage(e)}` };
  }
  if (info.isSymlink) {
    return { ok: false, code: "EINVAL", detail: `state dir ${stateDir} is a symlink; refusing` };
  }
  if (!info.isDirectory) {
    return { ok: false, code: "EINVAL", detail: `state dir ${stateDir} is not a directory` };
  }
  // A symlinked component between the root and the dir could point anywhere on the host.
  try {
    const realDir = Deno.realPathSync(stateDir);
    const realRoot = Deno.realPathSync(stateRoot);
    if (!isAtOrUnder(realDir, realRoot) || realDir === realRoot) {
      return {
        ok: false,
        code: "EINVAL",
        detail: `state dir ${stateDir} resolves to ${realDir}, outside the state root ${realRoot}`,
      };
    }
  } catch (e) {
    return { ok: false, code: "EIO", detail: `realpath ${stateDir}: ${errorMessage(e)}` };
  }

  let mounted: MountInfo[];
  try {
    mounted = mountsAtOrUnder(stateDir, readMounts());
  } catch (e) {
    // Without the mount table it is unknown whether the remove would cross into a mount.
    return { ok: false, code: "EIO", detail: `mountinfo: ${errorMessage(e)}` };
  }
  if (mounted.length > 0) {
    const list = mounted.map((m) => m.mountPoint).join(", ");
    return {
      ok: false,
      code: "EBUSY",
      detail: `EBUSY: refusing to remove ${stateDir}: ${mounted.length} mount(s) at or under ` +
        `it: ${list}`,
    };
  }

  try {
    await Deno.remove(stateDir, { recursive: true });
    return { ok: true, detail: "removed" };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { ok: true, detail: "already gone" };
    const code = e instanceof Deno.errors.Busy ? "EBUSY" : "EIO";
    return { ok: false, code, detail: `remove ${stateDir}: ${errorMessage(e)}` };
  }
}
