/**
 * Thawing a process's cgroup freezer directly. A frozen task sits in D state and ignores
 * SIGKILL, and `<rt> resume` only helps when the runtime itself paused it (or still knows the
 * container), so cleanup writes THAWED (cgroup v1) or 0 (cgroup v2 `cgroup.freeze`) itself.
 *
 * @module
 */

import { posix } from "node:path";
import { isAtOrUnder, type MountInfo, readMountInfo } from "../sys/mounts.ts";
import { isValidPid } from "../sys/proc.ts";
import { errorMessage } from "../error_message.ts";

/** One line of `/proc/<pid>/cgroup`. */
export interface CgroupLine {
  /** Hierarchy id; 0 is the cgroup v2 unified hierarchy. */
  hierarchy: number;
  /** Controllers bound to it ("freezer"; empty for v2; "name=systemd" for named ones). */
  controllers: string[];
  /** The cgroup's path relative to the hierarchy's root. */
  path: string;
}

/** Parses the text of `/proc/<pid>/cgroup`; bad lines are skipped. */
export function parseProcCgroup(text: string): CgroupLine[] {
  const lines: CgroupLine[] = [];
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchy = Number(line.slice(0, first));
    const path = line.slice(second + 1);
    if (!Number.isInteger(hierarchy) || !path.startsWith("/")) continue;
    const list = line.slice(first + 1, second);
    lines.push({ hierarchy, controllers: list === "" ? [] : list.split(","), path });
  }
  return lines;
}

/** Where a cgroup's directory is, given the mount of its hierarchy; null when not visible. */
function cgroupDir(mount: MountInfo, path: string): string | null {
  // A mount may show only part of the hierarchy (its root is then not "/").
  if (!isAtOrUnder(path, mount.root)) return null;
  const rel = posix.relative(mount.root, path);
  return rel === "" ? mount.mountPoint : posix.join(mount.mountPoint, rel);
}

/** The freezer controls of a process: v1 `freezer.state` and v2 `cgroup.freeze` files. */
export interface FreezerFiles {
  /** `<freezer mount>/<path>/freezer.state`, or null without a v1 freezer. */
  v1: string | null;
  /** `<cgroup2 mount>/<path>/cgroup.freeze`, or null without a v2 hierarchy. */
  v2: string | null;
}

/** Finds the freezer files of `pid` from `/proc/<pid>/cgroup` and the mount table. */
export function freezerFiles(
  pid: number,
  mounts: MountInfo[] = readMountInfo(),
): FreezerFiles {
  if (!isValidPid(pid)) return { v1: null, v2: null };
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/cgroup`);
  } catch {
    return { v1: null, v2: null };
  }
  return freezerFilesOf(parseProcCgroup(text), mounts);
}

/** Where the freezer files of a process in these cgroups are, given the mount table. */
export function freezerFilesOf(cgroups: CgroupLine[], mounts: MountInfo[]): FreezerFiles {
  const files: FreezerFiles = { v1: null, v2: null };
  for (const line of cgroups) {
    if (line.hierarchy === 0 && line.controllers.length === 0) {
      const m = mounts.find((m) => m.fsType === "cgroup2");
      const dir = m === undefined ? null : cgroupDir(m, line.path);
      if (dir !== null) files.v2 = `${dir}/cgroup.freeze`;
    } else if (line.controllers.includes("freezer")) {
      const m = mounts.find((m) =>
        m.fsType === "cgroup" && m.superOptions.split(",").includes("freezer")
      );
      const dir = m === undefined ? null : cgroupDir(m, line.path);
      if (dir !== null) files.v1 = `${dir}/freezer.state`;
    }
  }
  return files;
}

/** What {@linkcode thawProcess} did. */
export interface ThawReport {
  /** Files written to thaw the process's cgroup. */
  thawed: string[];
  /** Files that could not be read or written, with the reason. */
  errors: string[];
}

/**
 * Thaws every freezer that holds `pid`, writing only where it is frozen or freezing. A root
 * cgroup has no freezer file and is skipped. Never throws.
 */
export function thawProcess(pid: number, mounts?: MountInfo[]): ThawReport {
  const report: ThawReport = { thawed: [], errors: [] };
  let files: FreezerFiles;
  try {
    files = freezerFiles(pid, mounts);
  } catch (e) {
    report.errors.push(`mountinfo: ${errorMessage(e)}`);
    return report;
  }
  if (files.v1 !== null) thawFile(files.v1, "THAWED", "THAWED", report);
  if (files.v2 !== null) thawFile(files.v2, "0", "0", report);
  return report;
}

function thawFile(file: string, thawedValue: string, write: string, report: ThawReport): void {
  let current: string;
  try {
    // Synchronous: cgroupfs answers at once, and thawing must not wait for the blocking pool.
    current = Deno.readTextFileSync(file).trim();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) report.errors.push(`${file}: ${errorMessage(e)}`);
    return;
  }
  if (current === thawedValue) return;
  try {
    Deno.writeTextFileSync(file, write, { create: false });
    report.thawed.push(file);
  } catch (e) {
    report.errors.push(`${file}: ${errorMessage(e)}`);
  }
}
