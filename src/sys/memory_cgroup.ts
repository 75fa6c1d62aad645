/**
 * A container's memory cgroup and how many processes its OOM killer has killed. The kernel
 * counts them per memory cgroup: cgroup v2 `memory.events` and cgroup v1 `memory.oom_control`
 * (since Linux 4.13) both have an `oom_kill N` line. reaperd notes the count when it starts
 * watching a container and compares at its exit: a higher count means the container ran out
 * of memory and the kernel killed a process of it, which the exit code alone (137, SIGKILL)
 * does not tell from a `kill -9`.
 *
 * Every read here is of cgroupfs or procfs, which answer from kernel memory and never hang.
 *
 * @module
 */

import { posix } from "node:path";
import type { MemoryCgroupMark } from "../types.ts";
import { isAtOrUnder, type MountInfo, parseMountInfo } from "./mounts.ts";
import { readProcText } from "./proc.ts";

export type { MemoryCgroupMark };

/** The `oom_kill N` count in the text of `memory.events` or `memory.oom_control`, or null. */
export function parseOomKills(text: string): number | null {
  const match = /^oom_kill (\d+)$/m.exec(text);
  if (match === null) return null;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/** The cgroup and memory controller mounts of a mountinfo, the only ones this module needs. */
function cgroupMounts(mounts: readonly MountInfo[]): MountInfo[] {
  return mounts.filter((m) =>
    m.fsType === "cgroup2" ||
    (m.fsType === "cgroup" && m.superOptions.split(",").includes("memory"))
  );
}

/**
 * The memory cgroup directory named by the text of `/proc/<pid>/cgroup`: the v1 `memory`
 * hierarchy's line when a v1 memory controller is mounted, else the v2 line (`0::/path`). Null
 * for the root cgroup (no limit of the container's own) or when no mount shows the path.
 */
export function memoryCgroupDirOf(procCgroup: string, mounts: readonly MountInfo[]): string | null {
  let v1: string | null = null;
  let v2: string | null = null;
  for (const line of procCgroup.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (!path.startsWith("/")) continue;
    if (line.slice(0, first) === "0" && controllers === "") v2 = path;
    else if (controllers.split(",").includes("memory")) v1 = path;
  }
  const v1Mount = cgroupMounts(mounts).find((m) => m.fsType === "cgroup");
  const [path, mount] = v1 !== null && v1Mount !== undefined
    ? [v1, v1Mount]
    : [v2, mounts.find((m) => m.fsType === "cgroup2")];
  if (path === null || mount === undefined || path === "/") return null;
  // A mount may show only part of the hierarchy (its root is then not "/").
  if (!isAtOrUnder(path, mount.root)) return null;
  const rel = posix.relative(mount.root, path);
  return rel === "" ? null : posix.join(mount.mountPoint, rel);
}

/** The OOM kill count of the memory cgroup at `dir`, or null when it cannot be read. */
export function readOomKills(dir: string): number | null {
  // v2's file first; on v1 it is missing, a miss that costs no exception (this runs per exit).
  for (const file of ["memory.events", "memory.oom_control"]) {
    let text: string | null;
    try {
      text = readProcText(`${dir}/${file}`);
    } catch {
      continue;
    }
    if (text === null) continue;
    const count = parseOomKills(text);
    if (count !== null) return count;
  }
  return null;
}

/** Finds memory cgroups and notes their OOM kill counts. */
export class MemoryCgroups {
  readonly #readMountInfo: () => string;
  readonly #readProcCgroup: (pid: number) => string;
  #mounts: MountInfo[] | null = null;
  #own: string | null | undefined = undefined;

  /**
   * @param readMountInfo The mount table's text (this process's by default). Read once: the
   *   cgroup hierarchies are mounted at boot, and the table may be long on a container host.
   * @param readProcCgroup The text of `/proc/<pid>/cgroup`.
   */
  constructor(
    readMountInfo: () => string = () => Deno.readTextFileSync("/proc/self/mountinfo"),
    // A process that is gone has no cgroup lines: no memory cgroup, without an exception.
    readProcCgroup: (pid: number) => string = (pid) => readProcText(`/proc/${pid}/cgroup`) ?? "",
  ) {
    this.#readMountInfo = readMountInfo;
    this.#readProcCgroup = readProcCgroup;
  }

  #cgroupMounts(): MountInfo[] {
    if (this.#mounts === null) {
      try {
        this.#mounts = cgroupMounts(parseMountInfo(this.#readMountInfo()));
      } catch {
        return [];
      }
    }
    return this.#mounts;
  }

  #dirOf(pid: number): string | null {
    try {
      return memoryCgroupDirOf(this.#readProcCgroup(pid), this.#cgroupMounts());
    } catch {
      return null;
    }
  }

  /**
   * The memory cgroup of process `pid` with its OOM kill count now, or null. A cgroup that
   * holds reaperd itself too is no container's own (a process started without a cgroup of its
   * own): an OOM kill there may have hit anyone, so nothing is noted.
   */
  markOf(pid: number): MemoryCgroupMark | null {
    if (!Number.isSafeInteger(pid) || pid <= 0) return null;
    const dir = this.#dirOf(pid);
    if (dir === null) return null;
    if (this.#own === undefined) this.#own = this.#dirOf(Deno.pid);
    if (this.#own !== null && isAtOrUnder(this.#own, dir)) return null;
    return this.markAt(dir);
  }

  /**
   * The memory cgroup at `dir` (as an engine names it) with its OOM kill count now, or null
   * when `dir` is no memory cgroup: not absolute and normalized, not under a cgroup mount,
   * or without a readable count.
   */
  markAt(dir: string): MemoryCgroupMark | null {
    if (!dir.startsWith("/") || posix.normalize(dir) !== dir || dir.includes("\0")) return null;
    const under = this.#cgroupMounts().some((m) =>
      isAtOrUnder(dir, m.mountPoint) && dir !== m.mountPoint
    );
    if (!under) return null;
    const oomKills = readOomKills(dir);
    return oomKills === null ? null : { dir, oomKills };
  }
}

/**
 * How many processes the OOM killer killed in `mark`'s cgroup since the mark was taken; null
 * when the count cannot be read now (the cgroup is gone).
 */
export function oomKillsSince(mark: MemoryCgroupMark): number | null {
  const now = readOomKills(mark.dir);
  return now === null ? null : Math.max(0, now - mark.oomKills);
}
