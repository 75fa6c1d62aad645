/**
 * The exit path: each exit the supervisor decodes is recorded durably (running → stopping,
 * bursts committed together) and the record the store wrote is handed to the collector, whose
 * first attempt follows at once. See docs/architecture.md, "One exit, from FIFO to stopped".
 *
 * Exits that cannot be written because the store cannot take a write now (a full disk) are
 * held in memory, retried every second, reported on health, and flushed with a bounded wait at
 * shutdown; each one that could still not be written is logged with its status.
 *
 * An exit the store refuses for good (its record has no room for it) is lost: it is logged at
 * error once, shown on health, and recorded as lost (an `exit-lost` event and a mark) when the
 * store can take that much. Then its status is consumed and its read end let go, and a later
 * report of the same run (the next start finds it still `running`) is taken without a word.
 * Until the loss is durable the status stays in its FIFO, for the next start to find.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { StoreUnavailableError } from "../store/errors.ts";
import { EXIT_BATCH, type ExitInput, type ExitRecordResult, type Store } from "../store/store.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import type { ContainerRecord, ExitStatus } from "../types.ts";
import { Batcher } from "./batcher.ts";
import { errorMessage } from "../error_message.ts";

/** What the exit path reports to its observer (for metrics). */
export type ExitPathEvent =
  | {
    /** An exit became durable. */
    type: "recorded";
    id: string;
    /** Whether the status is known (the shim wrote a whole one). */
    known: boolean;
    /** Whether the memory cgroup's OOM killer ended it. */
    oomKilled: boolean;
    /** From the exit being decoded to its record being durable (ms). */
    latencyMs: number;
  }
  | {
    /** The store refused the exit for good: it is lost. */
    type: "refused";
    id: string;
    reason: string;
  };

/** How an {@linkcode ExitPath} is wired. */
export interface ExitPathOptions {
  /**
   * Where exits are recorded, and lost ones said to be. Without `recordExitLost` no loss is
   * durable, so a refused status stays in its FIFO.
   */
  store: Pick<Store, "recordExits"> & Partial<Pick<Store, "recordExitLost" | "lostExits">>;
  /** Takes each container whose exit was recorded: the collector. */
  handOver: (record: ContainerRecord) => void;
  log: Logger;
  /** Wall clock (ms since the epoch). */
  now?: () => number;
  /** How long to wait between tries while the store cannot take a write (default 1 000 ms). */
  retryMs?: number;
  /** Told about each exit recorded or refused; must not throw. */
  onEvent?: (event: ExitPathEvent) => void;
  /** The exit to record for a report (to add what is known about it); `report.exit` by default. */
  judge?: (report: ExitReport) => ExitStatus;
  /** Told once an exit is written, ignored or refused: nothing more will come for its run. */
  settled?: (report: ExitReport) => void;
}

/** Longest a cleanup waits for a burst of exits to be recorded. */
const RECORDING_PRIORITY_MS = 2000;
/** Refusals shown on health. */
const REFUSALS_SHOWN = 10;

/** Records exits, holds those the store cannot take yet, and hands each record over. */
export class ExitPath {
  readonly #writer: Batcher<ExitInput, ExitRecordResult>;
  readonly #store: Partial<Pick<Store, "recordExitLost">>;
  /** Runs whose exit is recorded lost, by container id; loaded from the store at start. */
  readonly #lost = new Map<string, { pid: number; startTime: number }>();
  readonly #lostLoaded: Promise<void>;
  readonly #handOver: (record: ContainerRecord) => void;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #retryMs: number;
  readonly #onEvent: (event: ExitPathEvent) => void;
  readonly #judge: (report: ExitReport) => ExitStatus;
  readonly #settled: (report: ExitReport) => void;
  /** Exits decoded but not written because the store could not take them, by container id. */
  readonly #held = new Map<string, ExitReport>();
  #heldTimer: ReturnType<typeof setTimeout> | null = null;
  #storeProblem: string | null = null;
  /** Exits refused by the store (lost), most recent last. */
  readonly #refused: string[] = [];
  /** Exits being written now; cleanups wait for them (see drained). */
  #recording = 0;
  readonly #recordingWaiters: Array<() => void> = [];
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: ExitPathOptions) {
    const store = options.store;
    this.#writer = new Batcher(EXIT_BATCH, (items) => store.recordExits(items));
    this.#store = store;
    this.#handOver = options.handOver;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#retryMs = options.retryMs ?? 1000;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#judge = options.judge ?? ((report) => report.exit);
    this.#settled = options.settled ?? (() => {});
    // Before any report is taken: the lost exits of an earlier start are not refused again.
    this.#lostLoaded = (store.lostExits?.() ?? Promise.resolve([])).then((lost) => {
      for (const { id, pid, startTime, reason } of lost) {
        this.#lost.set(id, { pid, startTime });
        this.#showRefusal(id, reason);
      }
    }, (error) => {
      this.#log.warn("cannot read the lost exits: {error}", { error: errorMessage(error) });
    });
  }

  /** Takes one exit (the supervisor's `onExit`); never throws. */
  report(report: ExitReport): void {
    // Judged once, when decoded: an exit held in memory keeps what was known then.
    this.#track(this.#take({ ...report, exit: this.#judge(report) }));
  }

  /** True while an exit is being written to the store. */
  get recording(): boolean {
    return this.#recording > 0;
  }

  /** Exits held in memory, not durable yet. */
  get held(): number {
    return this.#held.size;
  }

  /** Why the exit path is degraded (exits held or lost); empty when it is not. */
  problems(): string[] {
    const out: string[] = [];
    if (this.#held.size > 0) {
      out.push(
        `${this.#held.size} exit${this.#held.size === 1 ? "" : "s"} held in memory, not ` +
          `recorded: store: ${this.#storeProblem ?? "cannot take the write"}`,
      );
    } else if (this.#storeProblem !== null) {
      out.push(`store: ${this.#storeProblem}`);
    }
    return [...out, ...this.#refused];
  }

  /**
   * Settles once no exit is being recorded, or after a bound. Recording is what an exit's
   * latency is measured by; cleanups spawn runtimes and would take the CPU from a burst of exits
   * still waiting for their commit, so the collector awaits this before each attempt.
   */
  drained(): Promise<void> {
    if (this.#recording === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, RECORDING_PRIORITY_MS);
      this.#recordingWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Takes no more retries by timer, waits (at most `graceMs`) for exits being recorded, and
   * keeps trying to write those held in memory until the same deadline. Each exit still not
   * written is logged at error with its status: the next start will find it running and record
   * it as an exit while reaperd was down.
   *
   * @returns How many exits could not be written.
   */
  async close(graceMs = 10_000): Promise<number> {
    this.#closed = true;
    if (this.#heldTimer !== null) clearTimeout(this.#heldTimer);
    this.#heldTimer = null;
    const deadline = performance.now() + graceMs;
    const left = () => Math.max(0, deadline - performance.now());
    await withinMs(Promise.allSettled([...this.#inFlight]), left());
    while (this.#held.size > 0 && left() > 0) {
      await withinMs(this.#flushHeld(), left());
      if (this.#held.size > 0) await sleep(Math.min(200, left()));
    }
    for (const { id, exit } of this.#held.values()) {
      this.#log.error("exit of {id} not recorded before shutdown: {reason}", {
        id,
        code: exit.code,
        signal: exit.signal,
        known: exit.known,
        reason: exit.reason,
        error: this.#storeProblem,
      });
    }
    return this.#held.size;
  }

  #track(work: Promise<unknown>): void {
    const p = work.catch((error) =>
      this.#log.error("exit path failed: {error}", { error: errorMessage(error) })
    );
    this.#inFlight.add(p);
    p.finally(() => this.#inFlight.delete(p));
  }

  async #take(report: ExitReport): Promise<void> {
    await this.#lostLoaded;
    const lost = this.#lost.get(report.id);
    const { pid, startTime } = report.pidInfo;
    if (lost !== undefined && lost.pid === pid && lost.startTime === startTime) {
      // Logged and recorded lost already (by an earlier start): nothing to write or say again.
      this.#log.debug("exit of {id}: already recorded lost", { id: report.id });
      this.#settled(report);
      report.acknowledge?.();
      return;
    }
    await this.#record(report);
  }

  async #record(report: ExitReport): Promise<void> {
    const { id, exit } = report;
    const input: ExitInput = {
      id,
      pid: report.pidInfo.pid,
      startTime: report.pidInfo.startTime,
      exit,
    };
    let result: ExitRecordResult;
    this.#recording++;
    try {
      result = await this.#writer.add(input);
      if (result.outcome === "unavailable") {
        // Other exits of its batch were committed before the store stopped taking writes.
        this.#hold(report, new StoreUnavailableError(result.reason));
        return;
      }
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        this.#hold(report, error);
        return;
      }
      throw error;
    } finally {
      this.#recordingDone();
      // After the write, not before: the line is not what the exit waits for. An exit held
      // for a store that cannot write is tried again every retryMs: logged once, when the
      // store answers, not at each try.
      if (!this.#held.has(id)) {
        this.#log.info("exit of {id}: {reason}", {
          id,
          runtime: report.runtime,
          code: exit.code,
          known: exit.known,
          reason: exit.reason,
        });
      }
    }
    if (this.#held.size === 0) this.#storeProblem = null;
    this.#settled(report);
    if (result.outcome === "refused") {
      await this.#refuse(report, input, result.reason);
      return;
    }
    report.acknowledge?.();
    if (result.outcome === "ignored") {
      this.#log.debug("exit of {id} ignored: already recorded or another run", { id });
      return;
    }
    this.#emit({
      type: "recorded",
      id,
      known: exit.known,
      oomKilled: exit.oomKilled === true,
      latencyMs: Math.max(0, this.#now() - exit.at),
    });
    this.#handOver(result.record);
  }

  #recordingDone(): void {
    if (--this.#recording > 0) return;
    for (const wake of this.#recordingWaiters.splice(0)) wake();
  }

  async #refuse(report: ExitReport, input: ExitInput, reason: string): Promise<void> {
    const { id, exit } = input;
    this.#log.error("exit of {id} could not be recorded, it is lost: {reason}", {
      id,
      code: exit.code,
      signal: exit.signal,
      known: exit.known,
      reason,
    });
    this.#showRefusal(id, reason);
    this.#emit({ type: "refused", id, reason });
    if (this.#store.recordExitLost === undefined) return;
    try {
      // False when the record changed meanwhile: then its status is no one's to keep either.
      if (await this.#store.recordExitLost(input, reason)) {
        this.#lost.set(id, { pid: input.pid, startTime: input.startTime });
      }
    } catch (error) {
      this.#log.warn(
        "exit of {id}: its loss could not be recorded ({error}); its status stays in its FIFO " +
          "for the next start",
        { id, error: errorMessage(error) },
      );
      return;
    }
    report.acknowledge?.();
  }

  #showRefusal(id: string, reason: string): void {
    this.#refused.push(`exit of ${id} refused by the store: ${reason}`);
    if (this.#refused.length > REFUSALS_SHOWN) this.#refused.shift();
  }

  #hold(report: ExitReport, error: Error): void {
    this.#held.set(report.id, report);
    if (this.#storeProblem === null) {
      this.#log.error("store cannot record exits, holding them in memory: {error}", {
        error: error.message,
      });
    }
    this.#storeProblem = error.message;
    if (this.#heldTimer === null && !this.#closed) {
      this.#heldTimer = setTimeout(() => {
        this.#heldTimer = null;
        this.#track(this.#flushHeld());
      }, this.#retryMs);
    }
  }

  async #flushHeld(): Promise<void> {
    const reports = [...this.#held.values()];
    this.#held.clear();
    // Together, as one burst: a batch per EXIT_BATCH rather than a commit each.
    await Promise.all(reports.map((report) => this.#record(report)));
    if (this.#held.size === 0 && reports.length > 0) {
      this.#log.info("store writable again: {count} held exits recorded", {
        count: reports.length,
      });
    }
  }

  #emit(event: ExitPathEvent): void {
    try {
      this.#onEvent(event);
    } catch {
      // Metrics must not stop an exit.
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `work`, or `ms`, whichever comes first. */
async function withinMs(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([work, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}
