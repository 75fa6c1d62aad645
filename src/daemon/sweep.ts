/**
 * The start-up sweep of the state root. A host that crashed, or a store that lost its history,
 * can leave containers behind that no record names: their state dirs and exit FIFOs are still
 * where the configured layout puts them (`<stateRoot>/<runtime>/<id>` by default), and so may
 * be their shims. Each one found is adopted as a container of unknown identity (pid 0, start
 * time 0: nothing is ever signalled by pid for it; the runtime is still asked by container id),
 * its exit is recorded (read from the FIFO, or unknown when no shim holds it) and it is cleaned
 * up like any other.
 *
 * The walk follows the layout one component at a time: a literal name is entered as it is,
 * `{runtime}` stands for each configured runtime whose dir is there, `{id}` for each dir in it.
 * Only directories are entered, never a symlink. A layout without `{runtime}` does not say which
 * runtime a container belongs to: with one runtime configured, that one cleans it up; with more,
 * nothing found is adopted (a wrong runtime would be asked to delete it) and each is reported.
 *
 * A status found in an orphan's FIFO is copied, not read out: it is consumed only when the exit
 * path acknowledges that the exit is recorded, so a daemon killed in between leaves it for the
 * next start (whose read end the service manager keeps, see `open`).
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { idProblem, type StateLayout } from "../identity.ts";
import { decodeExitStatus, describeBytes, unknownExit } from "../supervisor/exit_status.ts";
import { EXIT_FIFO, openExitFifo } from "../supervisor/exit_fifo.ts";
import { consumeFifo, FifoPeek } from "../supervisor/fifo_peek.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord, ExitStatus, PidInfo } from "../types.ts";
import { errorMessage } from "../error_message.ts";

/** What {@linkcode sweepStateRoot} needs from the daemon. */
export interface SweepOptions {
  /** Where state dirs are (the state root and the configured layout). */
  layout: StateLayout;
  /** Configured runtime names: only their dirs are swept (cleanup needs the runtime). */
  runtimes: readonly string[];
  store: Pick<Store, "get" | "register" | "recordAdoption">;
  log: Logger;
  /**
   * Opens an exit FIFO's read end ({@linkcode openExitFifo} by default; the daemon's also keeps
   * a copy with the service manager, so that a status survives the daemon being killed).
   */
  open?: (fifo: string) => number;
  /** Told when a read end from `open` that the sweep kept is closed for good. */
  done?: (fifo: string) => void;
  /** Hands an adopted container's FIFO read end to the supervisor (which then owns `fd`). */
  watch: (record: ContainerRecord, fifo: string, fd: number) => void;
  /**
   * Takes an exit decided during the sweep down the daemon's exit path. Its `acknowledge`,
   * called once the exit is durable, consumes the status from the FIFO and closes the read end.
   */
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

/** A state dir the layout allows, as the walk found it. */
interface Candidate {
  stateDir: string;
  id: string;
  /** Null when the layout does not name the runtime. */
  runtime: string | null;
}

/**
 * Adopts every state dir of the configured layout with an exit FIFO that has no record. Reads
 * only directories and FIFOs (never follows a symlink); a dir it cannot adopt is reported, not
 * fatal.
 */
export async function sweepStateRoot(options: SweepOptions): Promise<SweepResult> {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const open = options.open ?? openExitFifo;
  const done = options.done ?? (() => {});
  const result: SweepResult = { adopted: [], watched: 0, skipped: [] };
  const peek = new FifoPeek();
  const walk = new Walk(options, result.skipped);
  try {
    for await (const { stateDir, id, runtime: named } of walk.candidates()) {
      const fifo = `${stateDir}/${EXIT_FIFO}`;
      try {
        if (options.held?.(fifo) || !(await isFifo(fifo))) continue;
        const problem = idProblem(id);
        if (problem !== null) {
          result.skipped.push({ dir: stateDir, reason: `not a container id: ${problem}` });
          continue;
        }
        if ((await store.get(id)) !== null) continue;
        const runtime = named ?? onlyRuntime(options.runtimes);
        if (typeof runtime !== "string") {
          result.skipped.push({ dir: stateDir, reason: runtime.problem });
          continue;
        }
        const fd = open(fifo);
        let exit: ExitStatus | "writer";
        let record: ContainerRecord;
        try {
          // Looked at before anything is recorded: a FIFO that cannot be looked into (no fd
          // for the private pipe) is left as it is for the next start, not decided unknown.
          exit = waiting(peek, fd, now());
          ({ record } = await store.register({ id, runtime, stateDir, ...UNKNOWN }));
          await store.recordAdoption(id, FOUND);
        } catch (error) {
          libc.close(fd);
          done(fifo);
          throw error;
        }
        result.adopted.push(id);
        if (exit === "writer") {
          options.watch(record, fifo, fd);
          result.watched++;
          continue;
        }
        const acknowledge = once(() => consumeAndClose(fd, fifo, done, log));
        const { name } = record;
        options.exited({ id, name, runtime, fifo, pidInfo: UNKNOWN, exit, acknowledge });
      } catch (error) {
        result.skipped.push({ dir: stateDir, reason: errorMessage(error) });
      }
    }
  } finally {
    peek.close();
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
 * The runtime of a container found under a layout that does not name it: the one configured,
 * else why it cannot be told.
 */
function onlyRuntime(runtimes: readonly string[]): string | { problem: string } {
  if (runtimes.length === 1) return runtimes[0]!;
  const names = runtimes.length === 0 ? "none" : [...runtimes].sort().join(", ");
  return {
    problem: `the state dir layout does not name the runtime and ${runtimes.length} runtimes ` +
      `are configured (${names}): cannot tell which one cleans it up`,
  };
}

/** The state dirs the layout allows, found by walking the state root one component at a time. */
class Walk {
  readonly #components: readonly string[];
  readonly #root: string;
  readonly #runtimes: readonly string[];
  readonly #recorded: ReadonlySet<string>;
  readonly #skipped: SweepResult["skipped"];

  constructor(options: SweepOptions, skipped: SweepResult["skipped"]) {
    this.#components = options.layout.components;
    this.#root = options.layout.root;
    this.#runtimes = options.runtimes;
    this.#recorded = options.recorded ?? new Set();
    this.#skipped = skipped;
  }

  candidates(): AsyncGenerator<Candidate> {
    return this.#below(this.#root, 0, null, null);
  }

  async *#below(
    dir: string,
    depth: number,
    runtime: string | null,
    id: string | null,
  ): AsyncGenerator<Candidate> {
    if (depth === this.#components.length) {
      if (id !== null) yield { stateDir: dir, id, runtime };
      return;
    }
    const part = this.#components[depth]!;
    if (part === "{id}") {
      for (const name of await this.#subdirs(dir)) {
        if (this.#recorded.has(name)) continue;
        yield* this.#below(`${dir}/${name}`, depth + 1, runtime, name);
      }
      return;
    }
    // A layout may name the runtime twice: the second must be the same.
    const names = part !== "{runtime}" ? [part] : runtime !== null ? [runtime] : this.#runtimes;
    for (const name of names) {
      const next = `${dir}/${name}`;
      if (!(await this.#isDir(next))) continue;
      yield* this.#below(next, depth + 1, part === "{runtime}" ? name : runtime, id);
    }
  }

  /** The dirs in `dir` (none when it is gone); a symlink or an unreadable dir is reported. */
  async #subdirs(dir: string): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isSymlink) this.#notFollowed(`${dir}/${entry.name}`);
        else if (entry.isDirectory) out.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#skipped.push({ dir, reason: errorMessage(error) });
      }
    }
    return out.sort();
  }

  /** Whether `path` is a directory itself (not a symlink to one); a symlink is reported. */
  async #isDir(path: string): Promise<boolean> {
    try {
      const info = await Deno.lstat(path);
      if (info.isSymlink) this.#notFollowed(path);
      return info.isDirectory;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#skipped.push({ dir: path, reason: errorMessage(error) });
      }
      return false;
    }
  }

  #notFollowed(path: string): void {
    this.#skipped.push({
      dir: path,
      reason: "a symlink where the layout has a directory: not followed",
    });
  }
}

/**
 * What the FIFO holds now, left in it: "writer" when a shim holds its write end and has
 * written nothing (the supervisor takes it from here), else the exit decided from what is
 * there (a status, or unknown when no shim holds it).
 */
function waiting(peek: FifoPeek, fd: number, at: number): ExitStatus | "writer" {
  const total = peek.peek(fd);
  if (total === null) return "writer";
  if (total === 0) return unknownExit(`no shim holds its exit FIFO: ${FOUND}`, at);
  const shown = peek.head.subarray(0, Math.min(total, peek.head.length));
  return decodeExitStatus(shown, total, false, at) ??
    unknownExit(`a partial status ${describeBytes(shown, total)}: ${FOUND}`, at);
}

/** The exit is durable: reads the status out of the FIFO and lets go of its read end. */
function consumeAndClose(
  fd: number,
  fifo: string,
  done: (fifo: string) => void,
  log: Logger,
): void {
  try {
    consumeFifo(fd, new Uint8Array(4096));
  } catch (error) {
    log.warn("{fifo}: reading out its status failed: {error}", {
      fifo,
      error: errorMessage(error),
    });
  }
  libc.close(fd);
  done(fifo);
}

/** `fn`, run the first time only. */
function once(fn: () => void): () => void {
  let ran = false;
  return () => {
    if (ran) return;
    ran = true;
    fn();
  };
}

async function isFifo(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isFifo === true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
