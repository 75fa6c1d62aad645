/**
 * What the service checks at the door before a request touches anything: ids, runtimes, state
 * dirs, and the pids a request names.
 *
 * @module
 */

import type { Config } from "../config.ts";
import { idProblem } from "../config.ts";
import { stateDirPathProblem } from "../runtime/state_dir.ts";
import type { Collector } from "../gc/collector.ts";
import { readProcStat } from "../sys/proc.ts";
import { ApiError } from "./api.ts";

/** A state dir outside the state root could never be cleaned up: refuse it at the door. */
export function checkStateDir(config: Config, stateDir: string): void {
  const problem = stateDirPathProblem(stateDir, config.stateRoot) ??
    symlinkBelowRoot(stateDir, config.stateRoot);
  if (problem !== null) throw new ApiError(400, problem);
}

/**
 * Refuses a state dir whose old run is still being cleaned (stopping or in GC), or a dir
 * inside it: the old run's cleanup would remove it under the new run.
 */
export function checkNotBeingCleaned(
  collector: Pick<Collector, "ownerOf">,
  stateDir: string,
): void {
  const owner = collector.ownerOf(stateDir);
  if (owner === null) return;
  throw new ApiError(
    409,
    `state dir ${stateDir} is still being cleaned up after container ${owner} ` +
      `(see reaperd gc status ${owner}); try again once its cleanup has finished`,
  );
}

/** Refuses a runtime the config does not name. */
export function checkRuntime(config: Config, runtime: string): void {
  if (!Object.hasOwn(config.runtimes, runtime)) {
    const known = Object.keys(config.runtimes).sort().join(", ") || "none";
    throw new ApiError(400, `unknown runtime ${JSON.stringify(runtime)} (configured: ${known})`);
  }
}

/**
 * Why `stateDir` (already known to lie lexically inside `stateRoot`) cannot be used: a part of
 * it below the root that exists but is a symlink or not a directory. Creating the dir, its
 * FIFO, or opening the FIFO would otherwise go through the link to wherever it points, and
 * cleanup would then refuse to remove it forever. Null when every existing part is a real dir.
 */
export function symlinkBelowRoot(stateDir: string, stateRoot: string): string | null {
  const root = stateRoot.replace(/\/+$/, "");
  let path = root;
  for (const part of stateDir.replace(/\/+$/, "").slice(root.length).split("/")) {
    if (part === "") continue;
    path = `${path}/${part}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      return `state dir ${stateDir}: cannot inspect ${path}: ${(e as Error).message}`;
    }
    if (info.isSymlink) return `state dir ${stateDir}: ${path} is a symlink; refusing`;
    if (!info.isDirectory) return `state dir ${stateDir}: ${path} is not a directory`;
  }
  return null;
}

/**
 * Refuses pid 1 (init is never a container's process or shim, and cleanup signals both) and,
 * with `live`, a pid that is alive now under another start time than `startTime`: the request
 * names a process that is gone, whose pid now belongs to someone else.
 */
export function checkIdentity(
  field: string,
  pid: number,
  startTime: number | undefined,
  live: boolean,
) {
  if (pid === 1) {
    throw new ApiError(400, `${field} 1 is init: never a container's process or shim`);
  }
  if (!live || startTime === undefined) return;
  const now = readProcStat(pid);
  if (now !== null && now.startTime !== startTime) {
    throw new ApiError(
      400,
      `${field} ${pid} is alive with start time ${now.startTime}, not ${startTime}: ` +
        "that is another process (a reused pid)",
    );
  }
}

/** Refuses an id that is not a valid container id. */
export function checkId(id: string): void {
  const problem = idProblem(id);
  if (problem !== null) throw new ApiError(400, `id ${problem}`);
}
