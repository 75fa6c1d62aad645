/**
 * The start-up sweep of the state root. A host that crashed, or a store that lost its history,
 * can leave containers behind that no record names: their state dirs and exit FIFOs are still
 * under `<stateRoot>/<runtime>/<id>`, and so may be their shims. Each one found is adopted as a
 * container of unknown identity (pid 0, start time 0: nothing is ever signalled by pid for it;
 * the runtime is still asked by container id), its exit is recorded (read from the FIFO, or
 * unknown when no shim holds it) and it is cleaned up like any other.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { idProblem } from "../identity.ts";
import { decodeExitStatus, describeBytes, unknownExit } from "../supervisor/exit_status.ts";
import { EXIT_FIFO, openExitFifo } from "../supervisor/exit_fifo.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord, ExitStatus, PidInfo } from "../types.ts";
import { errorMessage } from "../error_message.ts";

/** What {@linkcode sweepStateRoot} needs from the daemon. */
export interface SweepOptions {
  /** The state root. */
  stateRoot: string;
  /** Configured runtime names: only their dirs are swept (cleanup needs the runtime). */
  runtimes: readonly string[];
  store: Pick<Store, "get" | "register" | "recordAdoption">;
  log: Logger;
  /** Hands an adopted container's FIFO read end to the supervisor (which then owns `fd`). */
  watch: (record: ContainerRecord, fifo: string, fd: number) => void;
  /** Takes an exit decided during the sweep down the daemon's exit path. */
  exited: (report: ExitReport) => void;
  /**
   * True for a FIFO whose read end is held for a `monitor` still to come (create-fifo before
   * the restart, its read end handed back by the service manager): not an orphan, not adopted.
   */
  held?: (fifo: string) => boolean;
  /**
   * Ids known to have a record already (those just re-armed from the store): skipped with no
   * filesystem or store read, so a restart with many running containers does not read each
   * one again.
   */
  recorded?: ReadonlySet<string>;
  /** Wall clock (ms since the epoch). */
  now?: () => number;
}

/** What the sweep found. */
export interface SweepResult {
  /** Ids adopted (each now recorded; watched, or its exit taken down the exit path). */
  adopted: string[];
  /** Of those, how many were still held by a shim and are now watched. */
  watched: number;
  /** Dirs that could not be adopted, with why. */
  skipped: Array<{ dir: string; reason: string }>;
}

/** The identity of a container adopted from the state root: unknown. */
const UNKNOWN: PidInfo = { pid: 0, startTime: 0, ppid: 0, pStartTime: 0 };
const FOUND = "found under the state root with no record";

/**
 * Adopts every `<stateRoot>/<runtime>/<id>` with an exit FIFO that has no record. Reads only
 * directories and FIFOs (never follows a symlink); a dir it cannot adopt is reported, not fatal.
 */
export async function sweepStateRoot(options: SweepOptions): Promise<SweepResult> {
  const { stateRoot, store, log } = options;
  const now = options.now ?? Date.now;
  const result: SweepResult = { adopted: [], watched: 0, skipped: [] };
  const root = stateRoot.replace(/\/+$/, "");
  for (const runtime of options.runtimes) {
    const runtimeDir = `${root}/${runtime}`;
    let ids: string[];
    try {
      ids = await subdirs(runtimeDir);
    } catch (error) {
      result.skipped.push({ dir: runtimeDir, reason: errorMessage(error) });
      continue;
    }
    for (const id of ids) {
      const stateDir = `${runtimeDir}/${id}`;
      const fifo = `${stateDir}/${EXIT_FIFO}`;
      try {
        if (options.recorded?.has(id) || options.held?.(fifo) || !(await isFifo(fifo))) continue;
        if (idProblem(id) !== null) {
          result.skipped.push({ dir: stateDir, reason: `not a container id: ${idProblem(id)}` });
          continue;
        }
        if ((await store.get(id)) !== null) continue;
        const fd = openExitFifo(fifo);
        let record: ContainerRecord;
        try {
          ({ record } = await store.register({
            id,
            runtime,
            stateDir,
            ...UNKNOWN,
          }));
          await store.recordAdoption(id, FOUND);
        } catch (error) {
          libc.close(fd);
          throw error;
        }
        result.adopted.push(id);
        const exit = readWaiting(fd, now());
        if (exit === "writer") {
          options.watch(record, fifo, fd);
          result.watched++;
          continue;
        }
        libc.close(fd);
        options.exited({ id, name: record.name, runtime, fifo, pidInfo: UNKNOWN, exit });
      } catch (error) {
        result.skipped.push({ dir: stateDir, reason: errorMessage(error) });
      }
    }
  }
  if (result.adopted.length > 0) {
    log.warn(
      "adopted {count} containers {found} (identity unknown: never signalled by pid; {watched} still held by a shim): {ids}",
      {
        count: result.adopted.length,
        found: FOUND,
        watched: result.watched,
        ids: result.adopted.join(", "),
      },
    );
  }
  for (const { dir, reason } of result.skipped) {
    log.warn("state root sweep: {dir} not adopted: {reason}", { dir, reason });
  }
  return result;
}

/**
 * What the FIFO holds now: "writer" when a shim holds its write end and has written nothing
 * (the supervisor takes it from here, nothing consumed), else the exit decided from what was
 * there (a status, or unknown when no shim holds it).
 */
function readWaiting(fd: number, at: number): ExitStatus | "writer" {
  const bytes = new Uint8Array(64);
  let total = 0;
  let hungUp = false;
  for (;;) {
    const n = libc.read(fd, bytes.subarray(Math.min(total, bytes.length - 1)));
    if (n === null) break;
    if (n === 0) {
      hungUp = true;
      break;
    }
    total += n;
  }
  if (total === 0 && !hungUp) return "writer";
  if (total === 0) {
    return unknownExit(`no shim holds its exit FIFO: ${FOUND}`, at);
  }
  const shown = bytes.subarray(0, Math.min(total, bytes.length));
  return decodeExitStatus(shown, total, true, at) ??
    unknownExit(`a partial status ${describeBytes(shown, total)}: ${FOUND}`, at);
}

async function subdirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && !entry.isSymlink) out.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}

async function isFifo(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isFifo === true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
