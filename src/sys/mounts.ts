/**
 * The mount table as `/proc/self/mountinfo` tells it, and an unmount that follows no symlink.
 *
 * @module
 */

import { posix } from "node:path";
import { Errno, SysError } from "./errno.ts";
import { atEntry, FileType, unmountAt } from "./safe_path.ts";

/** One line of mountinfo (proc(5)), with its path fields unescaped. */
export interface MountInfo {
  /** Unique id of the mount. */
  id: number;
  /** Id of the parent mount. */
  parentId: number;
  /** "major:minor" of the filesystem. */
  device: string;
  /** The directory of the filesystem that forms the root of this mount (a bind's source). */
  root: string;
  /** Where it is mounted, relative to this process's root. */
  mountPoint: string;
  /** Per-mount options ("rw,relatime"). */
  options: string;
  /** Optional fields ("shared:1", "master:2"…). */
  optionalFields: string[];
  /** Filesystem type ("ext4", "cgroup", "tmpfs"…). */
  fsType: string;
  /** Filesystem-specific source ("/dev/vda", "tmpfs"…). */
  source: string;
  /** Per-superblock options (for cgroup v1 these name the controllers). */
  superOptions: string;
}

/**
 * Undoes the octal escapes the kernel puts in mountinfo path fields: space `\040`, tab `\011`,
 * newline `\012` and backslash `\134`.
 */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses the text of a mountinfo file. Lines that do not parse are skipped, never fatal. */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const info = parseLine(line);
    if (info !== null) mounts.push(info);
  }
  return mounts;
}

function parseLine(line: string): MountInfo | null {
  const fields = line.split(" ");
  // The optional fields run up to a lone "-", which the kernel always writes.
  const dash = fields.indexOf("-", 6);
  if (dash < 0 || fields.length < dash + 4) return null;
  const [id, parentId, device, root, mountPoint, options] = fields;
  if (
    id === undefined || parentId === undefined || device === undefined || root === undefined ||
    mountPoint === undefined || options === undefined
  ) {
    return null;
  }
  const idNum = Number(id);
  const parentNum = Number(parentId);
  if (!Number.isInteger(idNum) || !Number.isInteger(parentNum)) return null;
  return {
    id: idNum,
    parentId: parentNum,
    device,
    root: unescapeMountField(root),
    mountPoint: unescapeMountField(mountPoint),
    options,
    optionalFields: fields.slice(6, dash),
    fsType: fields[dash + 1] ?? "",
    source: unescapeMountField(fields[dash + 2] ?? ""),
    superOptions: fields[dash + 3] ?? "",
  };
}

/** Reads and parses a mountinfo file (this process's by default). */
export function readMountInfo(path = "/proc/self/mountinfo"): MountInfo[] {
  // Synchronous on purpose: procfs answers at once, and the blocking pool is kept for others.
  return parseMountInfo(Deno.readTextFileSync(path));
}

/** True when `path` is `dir` or lies below it (whole path components, lexically). */
export function isAtOrUnder(path: string, dir: string): boolean {
  const p = posix.normalize(path);
  const d = posix.normalize(dir).replace(/\/+$/, "");
  if (d === "") return p.startsWith("/");
  return p === d || p.startsWith(d + "/");
}

/**
 * The ways the kernel may spell `path` in mountinfo: as given (normalized) and with symlinks
 * resolved (`/var/run` is often `/run`). A path that does not exist keeps only the first.
 */
export function pathSpellings(path: string): string[] {
  const spellings = [posix.normalize(path)];
  try {
    const real = Deno.realPathSync(path);
    if (!spellings.includes(real)) spellings.push(real);
  } catch {
    // Missing or unreadable: nothing can be mounted at a resolved spelling we cannot see.
  }
  return spellings;
}

/**
 * True when something is mounted exactly at `path`. It resolves `path` (following symlinks)
 * and may block on a dead filesystem: for tests and tools, not for the daemon's loop.
 */
export function isMountPoint(path: string, mounts: MountInfo[] = readMountInfo()): boolean {
  const spellings = pathSpellings(path);
  return mounts.some((m) => spellings.includes(m.mountPoint));
}

/** What {@linkcode unmount} did. */
export type UnmountOutcome = "unmounted" | "not-mounted";

/**
 * Unmounts the top mount at `path`, resolving it without following any symlink (see
 * safe_path.ts): the parent is opened with RESOLVE_NO_SYMLINKS and the last component is
 * unmounted relative to it with UMOUNT_NOFOLLOW. Plain umount2, no lazy detach, so a busy
 * mount stays and says so. Returns "not-mounted" when nothing is mounted there or the path is
 * gone. Throws {@linkcode SysError}: EBUSY when busy, ELOOP when a component of the path
 * (the last one included) is a symlink, ENOTDIR when one is not a directory, and the rest.
 * May block as long as the filesystem under `path` does: call it from a helper process.
 */
export function unmount(path: string): UnmountOutcome {
  const outcome = atEntry(path, (dirFd, name, facts): UnmountOutcome => {
    if (facts.type === FileType.SYMLINK) {
      throw new SysError("umount2", Errno.ELOOP, `${path} is a symlink`);
    }
    if (!facts.mountRoot) return "not-mounted";
    try {
      unmountAt(dirFd, name, path);
    } catch (e) {
      if (e instanceof SysError && (e.errno === Errno.EINVAL || e.errno === Errno.ENOENT)) {
        return "not-mounted";
      }
      throw e;
    }
    return "unmounted";
  });
  return outcome ?? "not-mounted";
}
