/**
 * The garbage collector (seed `new_gchandler`, `gc_restore`, `start_gchandler`,
 * `gc_add_container`, `gc_is_gc_progress`): it owns every cleanup attempt, the first one right
 * after an exit included, and retries each container's cleanup until it succeeds, across
 * restarts. It is the one place that moves a container out of `stopping` (to `stopped`, or to
 * `gc` when the first attempt fails) and out of `gc` (to `stopped`).
 *
 * Unlike the seed's one-entry-per-100-ms round robin, it keeps a min-heap of due times and arms
 * ONE timer for the earliest; when it fires, every due entry starts, up to `concurrency` at a
 * time. A failed attempt is recorded durably with its next due time (exponential backoff with
 * jitter, capped, never a retry limit) and goes back into the heap, so a container that keeps
 * failing, or one whose cleanup hangs, holds at most one slot and never delays the others.
 *
 * The store is the truth: an entry is added to the store before it is scheduled, and its due
 * time survives a restart. An attempt whose result the store cannot write is made again, whole,
 * after a backoff, until the result is written: no outcome is kept only in memory. The heap runs
 * on a monotonic clock, so a wall clock that steps backwards (NTP at boot) cannot park an entry
 * for longer than the backoff cap.
 *
 * @module
 */

import type { ContainerRecord, GcEntry, StepResult } from "../types.ts";
import { ConflictError, NotFoundError } from "../store/errors.ts";
import type { GcAddInput, GcAddResult, GcAttempt, GcView, Store } from "../store/store.ts";
import {
  assertBackoffPolicy,
  backoffDelay,
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  type Jitter,
} from "./backoff.ts";
import type { Cleaner, CleanupOutcome } from "./cleaner.ts";
import { DueQueue } from "./due_queue.ts";
import { errorMessage } from "../error_message.ts";

/** The timer functions the collector arms; `globalThis`'s by default, fake ones in tests. */
export interface CollectorTimers {
  /** Calls `fn` once after `ms`; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer armed by setTimeout. */
  clearTimeout(handle: unknown): void;
}

/** What the collector reports to its observer (for metrics and logs). */
export type CollectorEvent =
  | {
    /** An attempt began. */
    type: "attempt-started";
    id: string;
    /** The container's runtime. */
    runtime: string;
    /** Which attempt this is, counting from 1 over the container's whole time in GC. */
    attempt: number;
    /** Wall clock (ms since the epoch). */
    at: number;
  }
  | {
    /**
     * An attempt ended: emitted for every attempt whose cleaner ran. Its outcome is in the
     * store, unless a "store-error" follows (the attempt is then made again).
     */
    type: "attempt-finished";
    id: string;
    /** The container's runtime. */
    runtime: string;
    attempt: number;
    /** Whether cleanup succeeded (the container is now stopped). */
    ok: boolean;
    /** How long the cleanup took (ms). */
    durationMs: number;
    /** When the next attempt is due (wall clock), null after success. */
    nextAttemptAt: number | null;
    /** What the cleaner reported. */
    outcome: CleanupOutcome;
  }
  | {
    /** The store could not be read or written; the entry is retried after `retryInMs`. */
    type: "store-error";
    id: string;
    error: unknown;
    retryInMs: number;
  }
  | {
    /** The container left GC by another way (stopped, gone); the collector forgot it. */
    type: "dropped";
    id: string;
    reason: string;
  };

/** How a {@linkcode Collector} is wired and tuned. */
export interface CollectorOptions {
  /** Where GC entries live. */
  store: Store;
  /** How to clean one container. */
  cleaner: Cleaner;
  /** Most cleanups at once (knob `gc.concurrency`, default 8). */
  concurrency?: number;
  /** Backoff after the first failure (knob `gc.backoffBaseMs`, default 500 ms). */
  backoffBaseMs?: number;
  /** Cap on the backoff (knob `gc.backoffMaxMs`, default 60 000 ms). */
  backoffMaxMs?: number;
  /** How the delay is drawn below its ceiling (knob `gc.jitter`, default "equal"). */
  jitter?: Jitter;
  /** Uniform in [0, 1), for tests. */
  random?: () => number;
  /** Wall clock in ms since the epoch (for durable due times); default Date.now. */
  clock?: () => number;
  /** Monotonic clock in ms (for the heap and timers); default performance.now. */
  monotonic?: () => number;
  /** Timer functions; default globalThis's. */
  timers?: CollectorTimers;
  /** How long stop() waits for cleanups in flight (default 10 000 ms). */
  stopTimeoutMs?: number;
  /** Told about each attempt and each trouble; must not throw (a throw is ignored). */
  onEvent?: (event: CollectorEvent) => void;
  /**
   * Awaited before each attempt starts: exits are recorded before cleanups take the CPU, so
   * the daemon passes a promise that settles once no exit is being recorded (bounded by it).
   */
  yieldTo?: () => Promise<void>;
}

/** What {@linkcode Collector.restore} loaded. */
export interface CollectorRestore {
  /** GC entries scheduled at their stored due times. */
  gc: number;
  /** Containers found `stopping` (their first attempt never ended), scheduled now. */
  stopping: number;
}

/** How busy the collector is, for health and metrics. */
export interface CollectorStats {
  /** Containers in GC that the collector knows of (waiting or being cleaned). */
  entries: number;
  /** Containers `stopping`: their first attempt is waiting for a slot or running. */
  stopping: number;
  /** Of those, how many had a process in D state (uninterruptible) at their last attempt. */
  dState: number;
  /**
   * The entries in GC by the /proc state char of a process that would not die at their last
   * attempt ("D", "Z"…), "none" for the others; the counts add up to `entries`.
   */
  byProcState: Record<string, number>;
  /** Entries waiting for their due time (or for a slot). */
  queued: number;
  /** Cleanups in flight. */
  running: number;
  /** The concurrency bound. */
  concurrency: number;
  /** Whether the collector takes new attempts. */
  started: boolean;
}

/**
 * The system's timers, except that a wait of 0 runs as a microtask: a zero timer still waits
 * for the next turn of the event loop (a millisecond or more, 4 ms once nested), which every
 * cleanup right after an exit would pay.
 */
const SYSTEM_TIMERS: CollectorTimers = {
  setTimeout(fn, ms) {
    if (ms > 0) return setTimeout(fn, ms);
    const handle = { cancelled: false };
    queueMicrotask(() => {
      if (!handle.cancelled) fn();
    });
    return handle;
  },
  clearTimeout(handle) {
    if (handle !== null && typeof handle === "object" && "cancelled" in handle) {
      (handle as { cancelled: boolean }).cancelled = true;
    } else {
      clearTimeout(handle as ReturnType<typeof setTimeout>);
    }
  },
};

/** Longest single timer: far-off heads are re-checked at least this often. */
const MAX_TIMER_MS = 3_600_000;

/**
 * The collector. Wire it with a store and a cleaner, `restore()` the durable list, then
 * `start()`; `takeExited()` hands it a container whose exit was just recorded, `add()` one
 * handed to GC directly; `stop()` before closing the store.
 *
 * @example
 * ```ts ignore
 * const gc = new Collector({ store, cleaner, concurrency: 8 });
 * await gc.restore();              // seed gc_restore
 * gc.start();                      // seed start_gchandler
 * gc.takeExited(record);           // its first attempt starts at once
 * await gc.add({ id, runtime, stateDir, pid, startTime, ppid, pStartTime }); // gc_add_container
 * gc.isInProgress(id);             // gc_is_gc_progress
 * await gc.stop();
 * ```
 */
export class Collector {
  readonly #store: Store;
  readonly #cleaner: Cleaner;
  readonly #concurrency: number;
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  readonly #clock: () => number;
  readonly #monotonic: () => number;
  readonly #timers: CollectorTimers;
  readonly #stopTimeoutMs: number;
  readonly #onEvent: (event: CollectorEvent) => void;
  readonly #yieldTo: () => Promise<void>;

  /** Waiting entries, keyed by monotonic due time. */
  readonly #queue = new DueQueue();
  /** Attempts in flight, by id. */
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Ids that came due again while an attempt for them was in flight. */
  readonly #deferred = new Set<string>();
  /** The /proc state char each entry's last attempt reported, for those that had one. */
  readonly #procStates = new Map<string, string>();
  /** Containers `stopping` whose first attempt has not ended, with the record to clean. */
  readonly #exited = new Map<string, ContainerRecord>();
  /** The state dir of every container the collector owns (stopping or in GC), both ways. */
  readonly #dirOf = new Map<string, string>();
  readonly #idAt = new Map<string, string>();
  #timer: unknown = null;
  #started = false;
  /** Store failures in a row, for the backoff of store retries. */
  #storeFailures = 0;
  /** Store failures in a row for each container, for the same backoff. */
  readonly #storeRetries = new Map<string, number>();

  /**
   * @param options Store, cleaner and knobs.
   * @throws {RangeError} on a knob out of range.
   */
  constructor(options: CollectorOptions) {
    this.#store = options.store;
    this.#cleaner = options.cleaner;
    this.#concurrency = options.concurrency ?? 8;
    if (!Number.isSafeInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new RangeError(`gc concurrency must be an integer >= 1, got ${options.concurrency}`);
    }
    this.#policy = {
      baseMs: options.backoffBaseMs ?? DEFAULT_BACKOFF.baseMs,
      maxMs: options.backoffMaxMs ?? DEFAULT_BACKOFF.maxMs,
      jitter: options.jitter ?? DEFAULT_BACKOFF.jitter,
    };
    assertBackoffPolicy(this.#policy);
    this.#random = options.random ?? Math.random;
    this.#clock = options.clock ?? Date.now;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#yieldTo = options.yieldTo ?? (() => Promise.resolve());
  }

  /**
   * Loads the durable GC list into the schedule (seed `gc_restore`), and every container left
   * `stopping` (its first attempt never ended) to be cleaned as soon as the collector starts.
   * Call it before `start()`, and before anything can record a new exit: a container recorded
   * `stopping` later is handed over by {@linkcode Collector.takeExited}, never found twice.
   *
   * @param stopping The containers recorded `stopping`, when the caller has read them already;
   *   read from the store when absent.
   * @returns How many containers were loaded, by kind.
   * @throws {StoreUnavailableError} when the store cannot be read.
   */
  async restore(stopping?: readonly ContainerRecord[]): Promise<CollectorRestore> {
    const views = await this.#store.listGcViews();
    stopping ??= await this.#store.list("stopping");
    for (const { record, entry } of views) {
      this.#own(record);
      this.#scheduleEntry(entry);
    }
    for (const record of stopping) this.takeExited(record);
    this.#arm();
    return { gc: views.length, stopping: stopping.length };
  }

  /** Starts taking attempts as entries come due (seed `start_gchandler`). */
  start(): void {
    this.#started = true;
    this.#arm();
  }

  /**
   * Stops taking new attempts and waits for those in flight, at most `timeoutMs`. Entries stay
   * in the store; a later `restore()` + `start()` (or a restart) carries on.
   *
   * @param timeoutMs How long to wait for cleanups in flight.
   * @returns True when nothing is in flight any more, false when the wait timed out.
   */
  async stop(timeoutMs: number = this.#stopTimeoutMs): Promise<boolean> {
    this.#started = false;
    this.#disarm();
    if (this.#inFlight.size === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A real timer on purpose: this bounds waiting for real I/O, not a schedule.
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const settled = Promise.allSettled(this.#inFlight.values()).then(() => true as const);
    try {
      return await Promise.race([settled, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Hands a container to GC (seed `gc_add_container`): written to the store first, then
   * scheduled. Idempotent per id.
   *
   * @param input The container, its runtime and its processes.
   * @returns What the store did.
   * @throws {StoreInputError} on bad input; {@linkcode StoreUnavailableError} when the store
   *   cannot take the write (nothing is scheduled then).
   * @throws {ConflictError} when the container runs with a known process or is stopping (see
   *   `Store.gcAdd`): nothing is written or scheduled.
   */
  async add(input: GcAddInput): Promise<GcAddResult> {
    const result = await this.#store.gcAdd(input);
    this.#own(result.record);
    // An id already in GC with an attempt in flight is that attempt's business.
    if (result.added || !this.#inFlight.has(input.id)) this.#scheduleEntry(result.entry);
    this.#arm();
    return result;
  }

  /**
   * Takes a container whose exit was just recorded (`stopping`, the record as the store wrote
   * it): its first attempt starts as soon as a slot is free, under the same concurrency limit
   * and the same rules as every retry. Success moves it to `stopped`; failure (a throw
   * included) moves it to `gc` with attempt 1 counted and the next one a backoff away.
   *
   * @param record The container's record, state `stopping`.
   */
  takeExited(record: ContainerRecord): void {
    this.#exited.set(record.id, record);
    this.#own(record);
    this.#queue.schedule(record.id, this.#monotonic());
    this.#arm();
  }

  /**
   * The id of the container being cleaned (stopping or in GC) whose state dir is `stateDir` or
   * one of its parents, or null. A new run must not use such a dir: the old run's cleanup still
   * removes it.
   */
  ownerOf(stateDir: string): string | null {
    let dir = stateDir.replace(/\/+$/, "");
    while (dir !== "") {
      const id = this.#idAt.get(dir);
      if (id !== undefined) return id;
      dir = dir.slice(0, dir.lastIndexOf("/"));
    }
    return null;
  }

  /**
   * Makes a scheduled entry's next attempt due now (`reaperd gc retry`); one in flight gets
   * another attempt as soon as it ends. The backoff goes on from the attempts counted.
   *
   * @returns False when the collector does not hold the id (not in GC).
   */
  retryNow(id: string): boolean {
    if (this.#inFlight.has(id)) this.#deferred.add(id);
    else if (this.#queue.has(id)) this.#queue.schedule(id, this.#monotonic());
    else return false;
    this.#arm();
    return true;
  }

  /**
   * Whether the container is in GC, from memory (seed `gc_is_gc_progress`): scheduled or
   * being cleaned. Matches the store once `restore()` has run.
   */
  isInProgress(id: string): boolean {
    return this.#queue.has(id) || this.#inFlight.has(id);
  }

  /**
   * Every container whose cleanup is in progress, with its record and entry: those in GC, from
   * the store, and those still `stopping` (their first attempt not ended), in id order.
   */
  async list(): Promise<GcView[]> {
    const views = await this.#store.listGcViews();
    if (this.#exited.size === 0) return views;
    const inGc = new Set(views.map((view) => view.record.id));
    for (const record of this.#exited.values()) {
      if (!inGc.has(record.id)) views.push(stoppingView(record));
    }
    return views.sort((a, b) => a.record.id < b.record.id ? -1 : a.record.id > b.record.id ? 1 : 0);
  }

  /**
   * One container's record and GC entry, from the store (seed `gc_is_gc_progress`); null once
   * its cleanup is over. A container still `stopping` (its first attempt not ended) is in
   * progress too: its entry says 0 attempts, due since its exit.
   */
  async status(id: string): Promise<GcView | null> {
    const view = await this.#store.gcView(id);
    if (view !== null) return view;
    const record = await this.#store.get(id);
    return record === null || record.state !== "stopping" ? null : stoppingView(record);
  }

  /** How busy the collector is. */
  stats(): CollectorStats {
    let entries = this.#queue.size;
    for (const id of this.#inFlight.keys()) if (!this.#queue.has(id)) entries++;
    entries = Math.max(0, entries - this.#exited.size);
    const byProcState: Record<string, number> = { none: entries };
    for (const state of this.#procStates.values()) {
      byProcState[state] = (byProcState[state] ?? 0) + 1;
      byProcState.none!--;
    }
    byProcState.none = Math.max(0, byProcState.none!);
    return {
      entries,
      stopping: this.#exited.size,
      dState: byProcState.D ?? 0,
      byProcState,
      queued: this.#queue.size,
      running: this.#inFlight.size,
      concurrency: this.#concurrency,
      started: this.#started,
    };
  }

  // ---------------------------------------------------------------- scheduling

  /** Schedules an entry at its durable due time, seen through the monotonic clock. */
  #scheduleEntry(entry: GcEntry): void {
    if (entry.procState === null) this.#procStates.delete(entry.id);
    else this.#procStates.set(entry.id, entry.procState);
    const wait = entry.nextAttemptAt - this.#clock();
    // A due time further off than the cap can only come from a wall clock that stepped back.
    this.#queue.schedule(entry.id, this.#monotonic() + clamp(wait, 0, this.#policy.maxMs));
  }

  /** Re-arms the one timer for the head of the heap, if a slot is free. */
  #arm(): void {
    this.#disarm();
    if (!this.#started || this.#inFlight.size >= this.#concurrency) return;
    const head = this.#queue.peek();
    if (head === undefined) return;
    const wait = clamp(head.at - this.#monotonic(), 0, MAX_TIMER_MS);
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = null;
      this.#launchDue();
    }, wait);
  }

  #disarm(): void {
    if (this.#timer === null) return;
    this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Starts every due entry while slots are free, then re-arms for the next one. */
  #launchDue(): void {
    if (!this.#started) return;
    const now = this.#monotonic();
    while (this.#inFlight.size < this.#concurrency) {
      const head = this.#queue.peek();
      if (head === undefined || head.at > now) break;
      this.#queue.pop();
      if (this.#inFlight.has(head.id)) {
        // Came due again (an add during the attempt): run it once this attempt is over.
        this.#deferred.add(head.id);
        continue;
      }
      this.#launch(head.id);
    }
    this.#arm();
  }

  #launch(id: string): void {
    const run = this.#attempt(id).catch((error) => {
      // #attempt handles store and cleaner failures; this is for the unexpected.
      this.#retryLater(id, error);
    }).finally(() => {
      this.#inFlight.delete(id);
      if (this.#deferred.delete(id) && !this.#queue.has(id)) {
        this.#queue.schedule(id, this.#monotonic());
      }
      this.#arm();
    });
    this.#inFlight.set(id, run);
  }

  // ---------------------------------------------------------------- one attempt

  /**
   * One attempt for `id`, the first one (the container still `stopping`, its record handed
   * over) or a retry (its GC entry read from the store): clean, then save the result.
   *
   * A result the store cannot write is not kept anywhere: the container stays owned and
   * scheduled, and the whole attempt (cleanup included, it is idempotent) is made again, with
   * the same attempt number, after a backoff that grows with the store failures; a failed
   * cleanup waits at least its own backoff too. So nothing lives only in memory, and a
   * restart in between cleans from the store's state.
   */
  async #attempt(id: string): Promise<void> {
    await this.#yieldTo();
    const subject = await this.#subject(id);
    if (subject === null) return;
    const { record, entry } = subject;
    const runtime = record.runtime;
    const attempt = (entry?.attempts ?? 0) + 1;
    const startedAt = this.#monotonic();
    this.#emit({ type: "attempt-started", id, runtime, attempt, at: this.#clock() });
    const outcome = await this.#clean(record);
    const durationMs = this.#monotonic() - startedAt;
    const finished = (nextAttemptAt: number | null) =>
      this.#emit({
        type: "attempt-finished",
        id,
        runtime,
        attempt,
        ok: outcome.ok,
        durationMs,
        nextAttemptAt,
        outcome,
      });

    const backoffMs = outcome.ok ? 0 : this.#delay(attempt);
    const failed: GcAttempt | null = outcome.ok ? null : {
      attempts: attempt,
      nextAttemptAt: this.#clock() + backoffMs,
      lastStep: outcome.failedStep,
      lastError: outcome.error,
      stderrTail: outcome.stderrTail,
      procState: outcome.procState,
      steps: outcome.steps,
    };
    let saved: GcEntry | null;
    try {
      saved = await this.#save(id, entry, outcome.steps, failed);
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof ConflictError) {
        // The store says the container is not this attempt's to clean any more.
        finished(null);
        return this.#drop(id, error.message);
      }
      // A failed cleanup also waits its own backoff, not to rerun it sooner than planned.
      const retryInMs = this.#storeBackoff(id, backoffMs);
      finished(failed === null ? null : this.#clock() + retryInMs);
      this.#retryLater(id, error, retryInMs);
      return;
    }
    this.#storeFailures = 0;
    this.#storeRetries.delete(id);
    if (saved === null) {
      this.#forget(id);
      return finished(null);
    }
    this.#exited.delete(id);
    this.#scheduleEntry(saved);
    finished(saved.nextAttemptAt);
  }

  /**
   * What the attempt for `id` cleans: the record handed over while the container is
   * `stopping`, else its GC view from the store. Null when there is nothing to do now: the
   * container left GC (forgotten), or the store could not be read (retried later).
   */
  async #subject(
    id: string,
  ): Promise<{ record: ContainerRecord; entry: GcEntry | null } | null> {
    const exited = this.#exited.get(id);
    if (exited !== undefined) return { record: exited, entry: null };
    let view: GcView | null;
    try {
      view = await this.#store.gcView(id);
    } catch (error) {
      this.#retryLater(id, error);
      return null;
    }
    if (view === null || view.record.state !== "gc") {
      this.#drop(id, "no longer in garbage collection");
      return null;
    }
    return view;
  }

  /**
   * Writes an attempt's result: success moves the container to `stopped` (from `stopping`, or
   * out of GC), failure to `gc` with the attempt counted (entering GC, or updating the entry).
   *
   * @param entry The container's GC entry, null on its first attempt (it is `stopping`).
   * @param steps The attempt's steps, kept in the event.
   * @param failed The failed attempt to record, null when the cleanup succeeded.
   * @returns The GC entry as written after a failure, null after success.
   */
  async #save(
    id: string,
    entry: GcEntry | null,
    steps: readonly StepResult[],
    failed: GcAttempt | null,
  ): Promise<GcEntry | null> {
    if (failed === null) {
      // Only from `stopping`: `gc add` refuses a stopping container, so nothing else should
      // have moved it, and a GC entry is never ended by a first attempt.
      if (entry === null) await this.#store.markStopped(id, "cleaned up", "stopping");
      else await this.#store.finishGc(id, steps);
      return null;
    }
    return entry === null
      ? await this.#store.enterGc(id, failed)
      : await this.#store.recordGcAttempt(id, failed);
  }

  /** Runs the cleaner; a throw or a malformed answer counts as a failed attempt. */
  async #clean(record: ContainerRecord): Promise<CleanupOutcome> {
    try {
      const outcome = await this.#cleaner.clean(record);
      if (outcome !== null && typeof outcome === "object" && typeof outcome.ok === "boolean") {
        return outcome;
      }
      return failure("the cleaner returned no outcome");
    } catch (error) {
      return failure(errorMessage(error));
    }
  }

  /** Forgets `id`, which left GC another way, and says why. */
  #drop(id: string, reason: string): void {
    this.#forget(id);
    this.#emit({ type: "dropped", id, reason });
  }

  #own(record: ContainerRecord): void {
    const dir = record.stateDir.replace(/\/+$/, "");
    const before = this.#dirOf.get(record.id);
    if (before !== undefined && this.#idAt.get(before) === record.id) this.#idAt.delete(before);
    this.#dirOf.set(record.id, dir);
    this.#idAt.set(dir, record.id);
  }

  /**
   * Forgets what the collector kept about `id`, once its cleanup is over or no longer its own;
   * its state dir stays owned while it waits again (a `gc add` that came during the attempt).
   */
  #forget(id: string): void {
    this.#exited.delete(id);
    this.#procStates.delete(id);
    this.#storeRetries.delete(id);
    if (this.#queue.has(id) || this.#deferred.has(id)) return;
    const dir = this.#dirOf.get(id);
    this.#dirOf.delete(id);
    if (dir !== undefined && this.#idAt.get(dir) === id) this.#idAt.delete(dir);
  }

  /** Puts `id` back after a store failure, `retryInMs` from now. */
  #retryLater(id: string, error: unknown, retryInMs = this.#storeBackoff(id)): void {
    this.#storeFailures++;
    this.#storeRetries.set(id, (this.#storeRetries.get(id) ?? 0) + 1);
    this.#emit({ type: "store-error", id, error, retryInMs });
    this.#queue.schedule(id, this.#monotonic() + retryInMs);
  }

  /**
   * How long `id` waits after one more store failure: backing off on the store's failures in a
   * row, or on this container's own when more (another container's write that succeeds does
   * not reset them), and at least `atLeastMs`.
   */
  #storeBackoff(id: string, atLeastMs = 0): number {
    const failures = Math.max(this.#storeFailures, this.#storeRetries.get(id) ?? 0) + 1;
    return Math.max(this.#delay(failures), atLeastMs);
  }

  #delay(failures: number): number {
    return backoffDelay(failures, this.#policy, this.#random);
  }

  #emit(event: CollectorEvent): void {
    try {
      this.#onEvent(event);
    } catch {
      // An observer is for metrics and logs; its failure must not stop a cleanup.
    }
  }
}

/** A `stopping` container as a GC view: 0 attempts, due since its exit. */
function stoppingView(record: ContainerRecord): GcView {
  const since = record.exit?.at ?? record.updatedAt;
  return {
    record,
    entry: {
      id: record.id,
      addedAt: since,
      attempts: 0,
      nextAttemptAt: since,
      lastStep: null,
      lastError: null,
      stderrTail: "",
      procState: null,
    },
  };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}

function failure(error: string): CleanupOutcome {
  return { ok: false, steps: [], failedStep: null, error, stderrTail: "", procState: null };
}
