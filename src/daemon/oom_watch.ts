/**
 * Tells an exit caused by the OOM killer from any other. When a container is monitored, its
 * memory cgroup (given by the engine, or found from `/proc/<pid>/cgroup`) is noted in its
 * record with the cgroup's OOM kill count then; when its exit is decoded, before the exit is
 * written, the count is read again: a higher count means the kernel killed a process of the
 * container for memory, and the exit says `oomKilled: true`. One small cgroupfs read per exit;
 * the cgroup is still there then, since only cleanup (after the exit is durable) removes it.
 *
 * @module
 */

import { MemoryCgroups, oomKillsSince } from "../sys/memory_cgroup.ts";
import type { ContainerRecord, ExitStatus, MemoryCgroupMark } from "../types.ts";

interface Watched {
  pid: number;
  startTime: number;
  mark: MemoryCgroupMark;
}

/** The memory cgroups of the containers being watched, by container id. */
export class OomWatch {
  readonly #cgroups: MemoryCgroups;
  readonly #watched = new Map<string, Watched>();

  /** @param cgroups Where memory cgroups are found (the machine's by default). */
  constructor(cgroups: MemoryCgroups = new MemoryCgroups()) {
    this.#cgroups = cgroups;
  }

  /** Containers watched now. */
  get size(): number {
    return this.#watched.size;
  }

  /**
   * The mark a new record keeps: the cgroup at `dir` when the engine named one (null when it is
   * no memory cgroup reaperd can read), else the memory cgroup of process `pid` (null when it
   * has none of its own, e.g. it runs in the root cgroup). With `exited` (the container is
   * gone already: it exited between its start and its monitor) the mark counts from 0, so that
   * the OOM kill that may have ended it still counts: the cgroup is the container's own.
   */
  markFor(pid: number, dir?: string, exited = false): MemoryCgroupMark | null {
    const mark = dir === undefined ? this.#cgroups.markOf(pid) : this.#cgroups.markAt(dir);
    return mark !== null && exited ? { ...mark, oomKills: 0 } : mark;
  }

  /** Watches a running container whose record has a memory cgroup mark (others: nothing). */
  watch(record: ContainerRecord): void {
    if (record.memoryCgroup === undefined) {
      this.#watched.delete(record.id);
      return;
    }
    this.#watched.set(record.id, {
      pid: record.pid,
      startTime: record.startTime,
      mark: record.memoryCgroup,
    });
  }

  /**
   * Stops watching `id` (its exit is recorded, or it was handed to GC). With `pid` and
   * `startTime`, only that run: a later run of the same id, watched since, stays watched.
   */
  forget(id: string, pid?: number, startTime?: number): void {
    const watched = this.#watched.get(id);
    if (watched === undefined) return;
    if (pid !== undefined && (watched.pid !== pid || watched.startTime !== startTime)) return;
    this.#watched.delete(id);
  }

  /**
   * `exit` with `oomKilled` decided from the cgroup of container `id`, watched with this pid
   * and start time; unchanged when it is not watched or its count cannot be read now.
   */
  judge(id: string, pid: number, startTime: number, exit: ExitStatus): ExitStatus {
    const watched = this.#watched.get(id);
    if (watched === undefined || watched.pid !== pid || watched.startTime !== startTime) {
      return exit;
    }
    const kills = oomKillsSince(watched.mark);
    if (kills === null) return exit;
    if (kills === 0) return { ...exit, oomKilled: false };
    const what = kills === 1 ? "a process" : `${kills} processes`;
    return {
      ...exit,
      oomKilled: true,
      reason: `${exit.reason}; out of memory: the OOM killer of its memory cgroup killed ${what}`,
    };
  }
}
