/**
 * The durable store: container records, the GC list and the event log in one Deno KV file.
 *
 * Every state change is one `kv.atomic()` commit that checks the versionstamps it read, writes
 * the new record and/or GC entry, and appends the event that tells of it; a crash at any
 * instant leaves either all of it or none. Event sequence numbers are handed out in memory
 * (one process owns the KV file) under a write lock, so events commit in sequence order and a
 * reader that follows "events after N" never skips one that commits late.
 *
 * @module
 */

import type {
  ContainerRecord,
  ContainerState,
  ExitStatus,
  GcEntry,
  MemoryCgroupMark,
  StepResult,
} from "../types.ts";
import {
  adoptEvent,
  exitEvent,
  exitLostEvent,
  gcAttemptEvent,
  gcDoneEvent,
  gcEvent,
  monitorEvent,
  type NewEvent,
  type ReaperEvent,
  type RestoreCounts,
  restoreEvent,
  stoppedEvent,
} from "./events.ts";
import {
  ConflictError,
  NotFoundError,
  StoreError,
  StoreInputError,
  StoreUnavailableError,
} from "./errors.ts";
import {
  CONTAINER,
  containerKey,
  EVENT,
  eventKey,
  GC,
  gcKey,
  LOST,
  lostKey,
  STOPPED,
  STOPPED_INDEX_KEY,
  stoppedKey,
  STORE_ID_KEY,
} from "./keys.ts";
import { clampExit, clampSteps, head, MAX_MESSAGE, MAX_TAIL, tail } from "./_clamp.ts";
import {
  checkId,
  checkInteger,
  checkPath,
  checkPaths,
  checkRuntime,
  checkText,
  checkTime,
} from "./_validate.ts";
import { errorMessage } from "../error_message.ts";
import { RunningCache } from "./running_cache.ts";
import {
  commitGroups,
  keySize,
  MAX_CHECKS,
  MAX_MUTATIONS,
  VALUE_BUDGET,
  valueSize,
} from "./_size.ts";

/** How a {@linkcode Store} behaves. */
export interface StoreOptions {
  /** Wall clock in ms since the epoch; every timestamp the store writes comes from it. */
  clock?: () => number;
  /** Most events the log keeps (default 100 000); older ones are trimmed in batches. */
  maxEvents?: number;
  /**
   * How far below `maxEvents` a trim goes (default 1 000, at most 1 000 and at most half of
   * `maxEvents`), so that trimming runs once per batch of writes rather than on every write.
   */
  trimBatch?: number;
  /** How many times a read-modify-write is retried when the record changed under it (5). */
  maxRetries?: number;
  /** Told about failures the store survived (a trim that failed, a listener that threw). */
  onWarning?: (message: string, error: unknown) => void;
}

/** A container to record as running (seed `container_supervisor_add_exit_monitor`). */
export interface RegisterInput {
  /** Container id. */
  id: string;
  /** Runtime name. */
  runtime: string;
  /** `<stateRoot>/<runtime>/<id>`. */
  stateDir: string;
  /** The container's init process (> 0), or 0 with start time 0 when it is not known. */
  pid: number;
  /** Its start time (clock ticks since boot). */
  startTime: number;
  /** The shim's pid, 0 if none. */
  ppid: number;
  /** The shim's start time, 0 if none. */
  pStartTime: number;
  /** Human name; defaults to the id. */
  name?: string | undefined;
  /** Mount points cleanup must unmount. */
  mounts?: readonly string[] | undefined;
  /** Other paths cleanup must remove. */
  paths?: readonly string[] | undefined;
  /** Its memory cgroup and OOM kill count now, to tell an OOM kill at its exit. */
  memoryCgroup?: MemoryCgroupMark | undefined;
}

/** What {@linkcode Store.register} did. */
export interface RegisterResult {
  /** The record as stored. */
  record: ContainerRecord;
  /** False when the same run was already registered (nothing was written). */
  created: boolean;
}

/** What is known when a container moves from `stopping` to `gc`. */
export interface GcEnterInfo {
  /** Cleanup attempts already made (the daemon's own first try counts), default 0. */
  attempts?: number;
  /** When the collector should try next, default now. */
  nextAttemptAt?: number;
  /** The step that failed. */
  lastStep?: string | null;
  /** Why it failed. */
  lastError?: string | null;
  /** The failing step's stderr tail. */
  stderrTail?: string;
  /** The container process's /proc state char when it would not die. */
  procState?: string | null;
  /** The steps of the failed cleanup, kept in the event. */
  steps?: readonly StepResult[];
}

/**
 * A container handed straight to the collector (seed `gc_add_container(id, runtime, pid_info)`):
 * the fields of a registration, where `pid` may be 0 (known to be gone) and start times 0
 * (unknown), and absent names, mounts and paths keep those of an existing record.
 */
export interface GcAddInput extends RegisterInput {
  /** Why it was added, kept in the event ("gc add", "restore: died while down"…). */
  reason?: string | undefined;
  /** When the first attempt is due, default now. */
  nextAttemptAt?: number | undefined;
}

/** What {@linkcode Store.gcAdd} did. */
export interface GcAddResult {
  /** The container's record (state `gc`). */
  record: ContainerRecord;
  /** Its GC entry. */
  entry: GcEntry;
  /** False when the id was already in GC (nothing was written). */
  added: boolean;
}

/** The outcome of one failed GC attempt, as {@linkcode Store.recordGcAttempt} keeps it. */
export interface GcAttempt {
  /** Attempts made so far, this one included. */
  attempts: number;
  /** When the next attempt is due (ms since the epoch). */
  nextAttemptAt: number;
  /** The step that failed. */
  lastStep: string | null;
  /** Why it failed. */
  lastError: string | null;
  /** The failing step's stderr tail. */
  stderrTail: string;
  /** The container process's /proc state char when it would not die, else null. */
  procState: string | null;
  /** Every step of the attempt with its result (kept in the event, not in the entry). */
  steps: readonly StepResult[];
}

/** A container in GC with its record. */
export interface GcView {
  /** The container's record. */
  record: ContainerRecord;
  /** Its GC entry. */
  entry: GcEntry;
}

/** One exit for {@linkcode Store.recordExits}: what {@linkcode Store.recordExit} takes. */
export interface ExitInput {
  /** Container id. */
  id: string;
  /** The pid the exit was observed for. */
  pid: number;
  /** That process's start time. */
  startTime: number;
  /** How it exited. */
  exit: ExitStatus;
}

/**
 * What {@linkcode Store.recordExits} did with one exit: recorded (running → stopping, with the
 * record as written), ignored (unknown id, not running, another pid or start time, or a repeat),
 * refused (this exit can never be written as given; the reason says why), or unavailable (the
 * store could not take the write after other exits of the same call were committed: try again).
 */
export type ExitRecordResult =
  | { outcome: "recorded"; record: ContainerRecord }
  | { outcome: "ignored" }
  | { outcome: "refused"; reason: string }
  | { outcome: "unavailable"; reason: string };

/** An exit the store refused for good: its running record has no room for it. */
export interface LostExit {
  /** Container id. */
  id: string;
  /** The process the exit was seen for. */
  pid: number;
  /** Its start time. */
  startTime: number;
  /** How it exited. */
  exit: ExitStatus;
  /** Why it was refused. */
  reason: string;
  /** When it was refused (ms since the epoch). */
  at: number;
  /** The record's `createdAt`: a record registered again since is another run. */
  createdAt: number;
}

/** One exit of a batch, ready to commit. */
interface ExitWrite {
  /** Its place in the batch. */
  index: number;
  /** The record as read (its versionstamp is checked). */
  entry: Deno.KvEntryMaybe<ContainerRecord>;
  item: ExitInput;
  /** The record as it will be written. */
  record: ContainerRecord;
  event: NewEvent;
  /** At least what its keys and values cost against the commit size. */
  bytes: number;
}

/** A registration's answer, to hand to its caller: its result or what it throws. */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** A registration waiting for its batch. */
interface QueuedRegistration {
  input: RegisterInput;
  resolve: (outcome: Settled<RegisterResult>) => void;
}

/** One registration of a batch, decided and ready to commit. */
interface RegisterWrite {
  /** Its place in the batch. */
  index: number;
  /** The container. */
  id: string;
  /** The record and GC entry as read (their versionstamps are checked). */
  record: Deno.KvEntryMaybe<ContainerRecord>;
  gc: Deno.KvEntryMaybe<GcEntry>;
  write: NonNullable<Decision<RegisterResult>["write"]>;
  event: NewEvent;
  result: RegisterResult;
  /** At least what its keys and values cost against the commit size. */
  bytes: number;
}

/** Counts of records by state. */
export type StateCounts = Record<ContainerState, number>;

/** Receives each event once it is committed. */
export type EventListener = (event: ReaperEvent) => void;

/** What a transition decided after reading the record and the GC entry. */
interface Decision<T> {
  /** What the caller gets back. */
  result: T;
  /** What to write; absent when nothing changes (an idempotent repeat). */
  write?: {
    /** The new record; undefined leaves it as is. */
    record?: ContainerRecord | undefined;
    /** The new GC entry, null to delete it, undefined to leave it as is. */
    gc?: GcEntry | null | undefined;
    /** The event that tells of it. */
    event: NewEvent;
    /** More to write in the same commit. */
    also?: (op: Deno.AtomicOperation) => void;
  };
}

const DEFAULT_MAX_EVENTS = 100_000;
const DEFAULT_TRIM_BATCH = 1_000;
const DEFAULT_MAX_RETRIES = 5;
const MAX_EVENT_PAGE = 10_000;
/** Deno KV reads at most 10 keys per getMany. */
const MAX_GET_MANY = 10;
/**
 * Exits per commit in {@linkcode Store.recordExits}: two checks each, and Deno KV allows 100
 * checks per atomic commit.
 */
export const EXIT_BATCH = 40;
/** Most events kept in memory for followers of the log (see eventsSince). */
const RECENT_EVENTS = 512;
/** Most registrations taken from the queue at once (committed in groups within the limits). */
const REGISTER_BATCH = 100;
/** Retention index keys a sweep reads and deletes per commit: one check each. */
const FORGET_PAGE = MAX_CHECKS;

/** A record a retention sweep found in the index: its index entry, then the record read. */
interface DueRecord {
  index: Deno.KvEntry<null>;
  /** The stop time the index key names. */
  at: number;
  id: string;
  record: Deno.KvEntryMaybe<ContainerRecord> | null;
}

/** Whether two keys are the same. */
function sameKey(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && a.every((part, i) => part === b[i]);
}

/**
 * The durable store. Open it with {@linkcode Store.open} on a `Deno.Kv` the caller owns (and
 * closes); one process should own the KV file.
 *
 * Transitions (docs/architecture.md §4): `register` (→ running), `recordExit` (running →
 * stopping), `markStopped` (stopping|gc → stopped), `enterGc` (stopping → gc), `gcAdd` (none,
 * stopped, or running of unknown identity → gc), `recordGcAttempt` (gc → gc), `finishGc`
 * (gc → stopped). Each is one atomic commit with its event. Errors: {@linkcode NotFoundError}, {@linkcode ConflictError},
 * {@linkcode StoreInputError}, {@linkcode StoreUnavailableError} (retry later).
 *
 * @example Record a container's life
 * ```ts ignore
 * const kv = await Deno.openKv("/var/lib/reaperd/reaperd.db");
 * const store = await Store.open(kv);
 * await store.register({ id: "c1", runtime: "runc", stateDir: "/var/run/isulad/runc/c1",
 *   pid: 42, startTime: 777, ppid: 41, pStartTime: 770 });
 * await store.recordExit("c1", 42, 777, { code: 0, signal: null, known: true,
 *   reason: "exited with code 0", at: Date.now() });
 * await store.markStopped("c1");
 * kv.close();
 * ```
 */
export class Store {
  readonly #kv: Deno.Kv;
  readonly #clock: () => number;
  readonly #maxEvents: number;
  readonly #trimSlack: number;
  readonly #maxRetries: number;
  readonly #onWarning: (message: string, error: unknown) => void;
  readonly #listeners = new Set<EventListener>();
  /** The seq the next event gets. */
  #nextSeq = 1;
  /** The oldest seq the log may still hold. */
  #firstSeq = 1;
  /** Set when a commit failed in a way that leaves #nextSeq in doubt; reloaded before use. */
  #seqStale = true;
  /** Tail of the write lock: each commit waits for the one before it. */
  #writeTail: Promise<void> = Promise.resolve();
  #trimming = false;
  /** The newest committed events, consecutive seqs, oldest first (at most RECENT_EVENTS). */
  readonly #recent: ReaperEvent[] = [];
  /** Registrations waiting for the one being written. */
  readonly #registrations: QueuedRegistration[] = [];
  #registering = false;
  /** Running records as last committed here: an exit is committed from them without a read. */
  readonly #running = new RunningCache();
  /** Whether every stopped record is known to have its retention index key. */
  #stoppedIndexed = false;

  private constructor(kv: Deno.Kv, options: StoreOptions) {
    this.#kv = kv;
    this.#clock = options.clock ?? Date.now;
    const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new RangeError(`maxEvents must be an integer >= 1, got ${maxEvents}`);
    }
    const batch = options.trimBatch ?? DEFAULT_TRIM_BATCH;
    if (!Number.isSafeInteger(batch) || batch < 1) {
      throw new RangeError(`trimBatch must be an integer >= 1, got ${batch}`);
    }
    this.#maxEvents = maxEvents;
    this.#trimSlack = Math.min(batch, MAX_MUTATIONS, Math.floor(maxEvents / 2));
    this.#maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.#onWarning = options.onWarning ?? (() => {});
  }

  /**
   * Opens the store on `kv` and loads where the event log stands. Does not take ownership of
   * `kv`: the caller closes it.
   *
   * @param kv An open Deno KV handle.
   * @param options Clock and knobs.
   * @returns The store, ready for reads and writes.
   * @throws {StoreUnavailableError} when the KV file cannot be read.
   */
  static async open(kv: Deno.Kv, options: StoreOptions = {}): Promise<Store> {
    const store = new Store(kv, options);
    await store.#loadSeq();
    return store;
  }

  /**
   * The store's identity, made (a random UUID) and written the first time it is asked for. A
   * store that answers with another identity than the one recorded beside it, or that has to
   * make one although it was known before, is not the store it was: it lost its history.
   *
   * @returns The identity and whether it was made just now.
   * @throws {StoreUnavailableError} when the KV file cannot be read or written.
   */
  async identity(): Promise<{ id: string; created: boolean }> {
    const entry = await this.#read("read store id", () => this.#kv.get<string>(STORE_ID_KEY));
    if (typeof entry.value === "string") return { id: entry.value, created: false };
    const id = crypto.randomUUID();
    const result = await this.#read(
      "write store id",
      () => this.#kv.atomic().check(entry).set(STORE_ID_KEY, id).commit(),
    );
    if (!result.ok) return await this.identity();
    return { id, created: true };
  }

  // ---------------------------------------------------------------- transitions

  /**
   * Records a container as `running` with a "monitor" event. Registering the same run again
   * (same pid and start time) changes nothing; a stopped container may be registered for a new
   * run, which replaces its record, and so may a running one whose identity is unknown (pid 0,
   * start time 0: adopted from the state root) once its engine names its processes.
   *
   * @param input The container and its processes.
   * @returns The record and whether it was written.
   * @throws {ConflictError} when it runs with another pid, or is still stopping or in GC.
   * @throws {StoreInputError} on a bad id, runtime, path or pid.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async register(input: RegisterInput): Promise<RegisterResult> {
    // pid 0 with start time 0: a container whose init is not known (adopted from the state root).
    checkRegistration(input, input.startTime === 0 ? 0 : 1);
    const outcome = await new Promise<Settled<RegisterResult>>((resolve) => {
      this.#registrations.push({ input, resolve });
      if (!this.#registering) void this.#drainRegistrations();
    });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /**
   * Writes the registrations queued so far: the first one at once, and whatever arrives while
   * it is being written together in the next commit, so that an engine starting many
   * containers at once costs a few fsyncs, not one each.
   */
  async #drainRegistrations(): Promise<void> {
    this.#registering = true;
    try {
      while (this.#registrations.length > 0) {
        const batch = this.#registrations.splice(0, REGISTER_BATCH);
        const outcomes = batch.length === 1
          ? [await this.#registerOne(batch[0]!.input)]
          : await this.#registerBatch(batch.map((w) => w.input));
        batch.forEach((w, i) => w.resolve(outcomes[i]!));
      }
    } finally {
      this.#registering = false;
    }
  }

  /** One registration with a commit of its own. */
  async #registerOne(input: RegisterInput): Promise<Settled<RegisterResult>> {
    try {
      const value = await this.#registerNew(input) ?? await this.#transition<RegisterResult>(
        input.id,
        "register",
        (record, gc, now) => decideRegister(input, record, gc, now),
      );
      return { ok: true, value };
    } catch (error) {
      return { ok: false, error };
    }
  }

  /**
   * Registers a container the store has never seen (no record, no GC entry: the usual case)
   * with one commit that checks both keys are absent, skipping the read. Null when either
   * exists: the caller then reads and decides.
   */
  async #registerNew(input: RegisterInput): Promise<RegisterResult | null> {
    const now = this.#clock();
    const decision = decideRegister(input, null, null, now);
    const write = decision.write!;
    const id = input.id;
    const event = await this.#commit(
      "register",
      (op) => {
        op.check(
          { key: containerKey(id), versionstamp: null },
          { key: gcKey(id), versionstamp: null },
        );
        op.set(containerKey(id), write.record!);
      },
      write.event,
      (versionstamp) => this.#running.wrote(id, write.record!, versionstamp),
    );
    if (event === null) return null;
    this.#notify(event);
    await this.#maybeTrim();
    return decision.result;
  }

  /**
   * Registrations of distinct containers read together and committed together (as many per
   * commit as Deno KV's check, mutation and size limits allow), each with its event. An id that
   * comes twice, a group whose checks fail (a record changed meanwhile) or that the store
   * refuses as too large is written one registration at a time instead, so that each gets the
   * answer it would get alone.
   */
  async #registerBatch(batch: readonly RegisterInput[]): Promise<Settled<RegisterResult>[]> {
    const outcomes = new Array<Settled<RegisterResult>>(batch.length);
    const alone: number[] = [];
    const seen = new Set<string>();
    const distinct: number[] = [];
    batch.forEach((input, i) => {
      if (seen.has(input.id)) alone.push(i);
      else {
        seen.add(input.id);
        distinct.push(i);
      }
    });
    let reads: [Deno.KvEntryMaybe<ContainerRecord>, Deno.KvEntryMaybe<GcEntry>][];
    try {
      const perRead = MAX_GET_MANY / 2;
      const chunks: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
      for (let i = 0; i < distinct.length; i += perRead) {
        const keys = distinct.slice(i, i + perRead).flatMap((j) => [
          containerKey(batch[j]!.id),
          gcKey(batch[j]!.id),
        ]);
        chunks.push(this.#read("register", () => this.#kv.getMany(keys)));
      }
      const flat = (await Promise.all(chunks)).flat();
      reads = distinct.map((_, k) => [
        flat[2 * k] as Deno.KvEntryMaybe<ContainerRecord>,
        flat[2 * k + 1] as Deno.KvEntryMaybe<GcEntry>,
      ]);
    } catch (error) {
      return batch.map(() => ({ ok: false, error }));
    }
    const now = this.#clock();
    const writes: RegisterWrite[] = [];
    distinct.forEach((i, k) => {
      const input = batch[i]!;
      const [record, gc] = reads[k]!;
      let decision: Decision<RegisterResult>;
      try {
        decision = decideRegister(input, record.value, gc.value, now);
      } catch (error) {
        outcomes[i] = { ok: false, error };
        return;
      }
      const write = decision.write;
      if (write === undefined) {
        outcomes[i] = { ok: true, value: decision.result };
        return;
      }
      const event = write.event;
      const bytes = keySize(containerKey(input.id)) * 2 + keySize(gcKey(input.id)) * 2 +
        keySize(stoppedKey(0, input.id)) + valueSize(write.record) + 64 + valueSize(event);
      writes.push({
        index: i,
        id: input.id,
        record,
        gc,
        write,
        event,
        result: decision.result,
        bytes,
      });
    });
    // Three checks and at most four mutations each (record, GC entry, retention index, event).
    const perCommit = Math.floor(Math.min(MAX_CHECKS, MAX_MUTATIONS) / 3);
    for (const together of commitGroups(writes, perCommit)) {
      let events: ReaperEvent[] | null;
      try {
        events = await this.#commitRegistrations(together);
      } catch (error) {
        if (!(error instanceof StoreInputError)) {
          for (const w of together) outcomes[w.index] = { ok: false, error };
          continue;
        }
        events = null;
      }
      if (events === null) {
        for (const w of together) alone.push(w.index);
        continue;
      }
      for (const w of together) outcomes[w.index] = { ok: true, value: w.result };
      for (const event of events) this.#notify(event);
    }
    await this.#maybeTrim();
    alone.sort((a, b) => a - b);
    for (const i of alone) outcomes[i] = await this.#registerOne(batch[i]!);
    return outcomes;
  }

  /** Commits a group of registrations with their events; null when a check failed. */
  #commitRegistrations(writes: readonly RegisterWrite[]): Promise<ReaperEvent[] | null> {
    return this.#commitWithEvents("register", writes, (op, { id, record, gc, write }) => {
      stageWrite(op, id, record, gc, write);
    }, (versionstamp) => {
      for (const { id, write } of writes) {
        if (write.record !== undefined) this.#running.wrote(id, write.record, versionstamp);
      }
    });
  }

  /**
   * Commits `writes` in one atomic operation, each with its event at the next sequence number;
   * null when a check failed (nothing written). `stage` adds one write's checks and mutations;
   * `committed` runs once the commit went through.
   */
  #commitWithEvents<W extends { event: NewEvent }>(
    what: string,
    writes: readonly W[],
    stage: (op: Deno.AtomicOperation, write: W) => void,
    committed: (versionstamp: string) => void,
  ): Promise<ReaperEvent[] | null> {
    return this.#exclusive(async () => {
      if (this.#seqStale) await this.#loadSeq();
      const events: ReaperEvent[] = [];
      let seq = this.#nextSeq;
      try {
        const op = this.#kv.atomic();
        for (const write of writes) {
          const full = { seq: seq++, ...write.event } as ReaperEvent;
          stage(op, write);
          op.check({ key: eventKey(full.seq), versionstamp: null }).set(eventKey(full.seq), full);
          events.push(full);
        }
        const result = await op.commit();
        if (!result.ok) {
          // A record changed under the write (the caller reads it again and the seqs stay
          // free), or another writer took one of these seqs: only the event keys tell which.
          if (await this.#seqsTaken(this.#nextSeq, seq)) this.#seqStale = true;
          return null;
        }
        committed(result.versionstamp);
      } catch (error) {
        this.#seqStale = true;
        throw storeFailure(what, error);
      }
      this.#nextSeq = seq;
      return events;
    });
  }

  /**
   * Whether an event is stored at any seq from `from` up to `to` (exclusive): read only when
   * a commit of those events failed its checks. True as well when the read fails, so that the
   * sequence is loaded again before the next commit.
   */
  async #seqsTaken(from: number, to: number): Promise<boolean> {
    try {
      const reads: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
      for (let at = from; at < to; at += MAX_GET_MANY) {
        const keys: Deno.KvKey[] = [];
        for (let seq = at; seq < Math.min(at + MAX_GET_MANY, to); seq++) keys.push(eventKey(seq));
        reads.push(this.#kv.getMany(keys));
      }
      return (await Promise.all(reads)).flat().some((entry) => entry.versionstamp !== null);
    } catch {
      return true;
    }
  }

  /**
   * Records many exits ({@linkcode Store.recordExit} each) with one commit per
   * {@linkcode EXIT_BATCH} of them, so that a burst of exits costs a few fsyncs, not one each.
   * Each item gets the answer recordExit would give; when a batch's checks fail (a record
   * changed meanwhile) its items are recorded one by one instead.
   *
   * @param items The exits, in the order they were decoded.
   * @returns For each item, what was done with it (the record as written when recorded).
   * @throws {StoreUnavailableError} when the KV file cannot take the write now (nothing of the
   *   failing batch was written; earlier batches were).
   */
  async recordExits(items: readonly ExitInput[]): Promise<ExitRecordResult[]> {
    for (const item of items) checkId(item.id);
    const results: ExitRecordResult[] = [];
    for (let start = 0; start < items.length; start += EXIT_BATCH) {
      try {
        results.push(...await this.#recordExitBatch(items.slice(start, start + EXIT_BATCH)));
      } catch (error) {
        // Earlier batches are durable: their answers stand, the rest are to be tried again.
        if (!(error instanceof StoreUnavailableError) || start === 0) throw error;
        for (let i = start; i < items.length; i++) {
          results.push({ outcome: "unavailable", reason: error.message });
        }
        break;
      }
    }
    return results;
  }

  async #recordExitBatch(batch: readonly ExitInput[]): Promise<ExitRecordResult[]> {
    // The record as last committed running when it agrees with the exit (the commit checks its
    // versionstamp); read otherwise, so that an exit is only ever ignored on what the file says.
    const entries = new Array<Deno.KvEntryMaybe<ContainerRecord>>(batch.length);
    const unread: number[] = [];
    batch.forEach((item, i) => {
      const kept = this.#running.get(item.id);
      if (
        kept !== null && kept.record.pid === item.pid && kept.record.startTime === item.startTime
      ) {
        entries[i] = {
          key: containerKey(item.id),
          value: kept.record,
          versionstamp: kept.versionstamp,
        };
      } else {
        unread.push(i);
      }
    });
    for (let i = 0; i < unread.length; i += MAX_GET_MANY) {
      const part = unread.slice(i, i + MAX_GET_MANY);
      const keys = part.map((j) => containerKey(batch[j]!.id));
      const read = await this.#read(
        "record exits",
        () => this.#kv.getMany<ContainerRecord[]>(keys),
      );
      part.forEach((j, k) => entries[j] = read[k]!);
    }
    const now = this.#clock();
    const seen = new Set<string>();
    const writes: ExitWrite[] = [];
    const results = batch.map((item, i): ExitRecordResult => {
      const record = entries[i]!.value;
      if (
        seen.has(item.id) || record === null || record.state !== "running" ||
        record.pid !== item.pid || record.startTime !== item.startTime
      ) {
        return { outcome: "ignored" };
      }
      seen.add(item.id);
      const fit = fitExit(record, clampExit(item.exit));
      if (fit === null) {
        return { outcome: "refused", reason: tooLargeWithExit(item.id, valueSize(record)) };
      }
      const { exit, recordBytes } = fit;
      const written: ContainerRecord = { ...record, state: "stopping", exit, updatedAt: now };
      const event = exitEvent(written, exit);
      const bytes = keySize(containerKey(item.id)) * 2 + recordBytes + 64 + valueSize(event);
      writes.push({ index: i, entry: entries[i]!, item, record: written, event, bytes });
      return { outcome: "recorded", record: written };
    });
    // One commit per run of writes that fits Deno KV's commit size; each batch is already
    // within its check and mutation counts.
    // Indexes of writes whose answer is final; once one is durable, a store that stops taking
    // writes leaves the others "unavailable" rather than hiding what was committed.
    const answered = new Set<number>();
    try {
      for (const together of commitGroups(writes, writes.length)) {
        let events: ReaperEvent[] | null;
        try {
          events = await this.#commitExits(together);
        } catch (error) {
          // A limit the estimate missed: each item on its own, so that one never sinks the rest.
          if (!(error instanceof StoreInputError)) throw error;
          events = null;
        }
        if (events === null) {
          // Something changed under the group, or it was too large: each finds its own answer.
          for (const write of together) {
            this.#running.drop(write.item.id);
            results[write.index] = await this.#recordOneExit(write.item);
            answered.add(write.index);
          }
          continue;
        }
        for (const write of together) answered.add(write.index);
        for (const event of events) this.#notify(event);
      }
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || answered.size === 0) throw error;
      for (const write of writes) {
        if (!answered.has(write.index)) {
          results[write.index] = { outcome: "unavailable", reason: error.message };
        }
      }
    }
    await this.#maybeTrim();
    return results;
  }

  /** Commits a group of exits with their events; null when a check failed (nothing written). */
  #commitExits(writes: readonly ExitWrite[]): Promise<ReaperEvent[] | null> {
    return this.#commitWithEvents("record exits", writes, (op, { entry, record, item }) => {
      op.check(entry).set(containerKey(item.id), record);
    }, () => {
      for (const { item } of writes) this.#running.drop(item.id);
    });
  }

  /** One exit alone, as recordExit would take it; refused when the store can never write it. */
  async #recordOneExit(item: ExitInput): Promise<ExitRecordResult> {
    let record: ContainerRecord | null;
    try {
      record = await this.#exitTransition(item.id, item.pid, item.startTime, item.exit);
    } catch (error) {
      if (error instanceof StoreInputError) return { outcome: "refused", reason: error.message };
      throw error;
    }
    return record === null ? { outcome: "ignored" } : { outcome: "recorded", record };
  }

  /**
   * Records the exit of a running container (running → stopping, "exit" event), once. A report
   * for a container that is unknown, no longer running, or running under another pid or start
   * time (a stale report from an older run) is ignored.
   *
   * @param id Container id.
   * @param pid The pid the exit was observed for.
   * @param startTime That process's start time.
   * @param exit How it exited.
   * @returns True when this call recorded the exit, false when it was ignored.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async recordExit(id: string, pid: number, startTime: number, exit: ExitStatus): Promise<boolean> {
    checkId(id);
    return await this.#exitTransition(id, pid, startTime, exit) !== null;
  }

  /** recordExit's transition: the record as written, or null when the exit was ignored. */
  #exitTransition(
    id: string,
    pid: number,
    startTime: number,
    exit: ExitStatus,
  ): Promise<ContainerRecord | null> {
    return this.#transition(id, "record exit", (record, _gc, now) => {
      if (
        record === null || record.state !== "running" || record.pid !== pid ||
        record.startTime !== startTime
      ) {
        return { result: null };
      }
      const stored = fitExit(record, clampExit(exit))?.exit;
      if (stored === undefined) {
        throw new StoreInputError(tooLargeWithExit(id, valueSize(record)));
      }
      const stopping: ContainerRecord = {
        ...record,
        state: "stopping",
        exit: stored,
        updatedAt: now,
      };
      return {
        result: stopping,
        write: { record: stopping, event: exitEvent(stopping, stored) },
      };
    });
  }

  /**
   * Records that the exit of a running container is lost: its record has no room for it (see
   * {@linkcode Store.recordExits}, outcome "refused"). An "exit-lost" event, and a mark that
   * {@linkcode Store.lostExits} returns while the record is the same run's, in one commit; the
   * record itself is left as it is.
   *
   * @param item The exit, as given to recordExits.
   * @param reason Why it was refused.
   * @returns True when written; false when the record is gone, not running, or another run's
   *   (nothing written).
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async recordExitLost(item: ExitInput, reason: string): Promise<boolean> {
    checkId(item.id);
    const { event } = await this.#apply(item.id, "record lost exit", (record, _gc, now) => {
      if (!sameRun(record, item)) return { result: null };
      const exit = clampExit(item.exit);
      const why = head(reason, MAX_MESSAGE) ?? "";
      const { id, pid, startTime } = item;
      const lost: LostExit = {
        id,
        pid,
        startTime,
        exit,
        reason: why,
        at: now,
        createdAt: record.createdAt,
      };
      return {
        result: null,
        write: {
          event: exitLostEvent(record, { pid, startTime, exit, reason: why }, now),
          also: (op) => op.set(lostKey(id), lost),
        },
      };
    });
    return event !== null;
  }

  /**
   * The exits recorded lost ({@linkcode Store.recordExitLost}) whose record is still that
   * run's, `running`. The marks of records registered again since are deleted.
   */
  async lostExits(): Promise<LostExit[]> {
    const marks = await this.#read("list lost exits", async () => {
      const out: Deno.KvEntry<LostExit>[] = [];
      for await (const e of this.#kv.list<LostExit>({ prefix: [LOST] })) out.push(e);
      return out;
    });
    const out: LostExit[] = [];
    for (let i = 0; i < marks.length; i += MAX_GET_MANY) {
      const part = marks.slice(i, i + MAX_GET_MANY);
      const records = await this.#read(
        "list lost exits",
        () => this.#kv.getMany<ContainerRecord[]>(part.map((m) => containerKey(m.value.id))),
      );
      for (const [j, mark] of part.entries()) {
        const record = records[j]!;
        if (sameRun(record.value, mark.value) && record.value.createdAt === mark.value.createdAt) {
          out.push(mark.value);
          continue;
        }
        // Checked against both, so that a mark written meanwhile stays.
        const op = this.#kv.atomic().check(mark, record).delete(mark.key);
        await this.#read("forget lost exit", () => op.commit());
      }
    }
    return out;
  }

  /**
   * Marks a container `stopped` (from `stopping`, or from `gc`, which also drops its GC
   * entry), with a "stopped" event. Already stopped: returns the record, writes nothing.
   *
   * @param id Container id.
   * @param reason Why, kept in the event.
   * @param from The only state it may leave (any of stopping and gc when absent).
   * @returns The stopped record.
   * @throws {NotFoundError} when there is no record.
   * @throws {ConflictError} when it is still running, or not in state `from`.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async markStopped(
    id: string,
    reason = "cleaned up",
    from?: "stopping" | "gc",
  ): Promise<ContainerRecord> {
    checkId(id);
    return await this.#transition(id, "mark stopped", (record, gc, now) => {
      if (record === null) throw new NotFoundError(id);
      if (record.state === "stopped") return { result: record };
      if (from !== undefined && record.state !== from) {
        throw new ConflictError(
          id,
          record.state,
          `container ${id} is ${record.state}, not ${from}`,
        );
      }
      if (record.state === "running") {
        throw new ConflictError(
          id,
          record.state,
          `container ${id} is running; its exit is not recorded`,
        );
      }
      const stopped: ContainerRecord = { ...record, state: "stopped", updatedAt: now };
      return {
        result: stopped,
        write: {
          record: stopped,
          gc: gc === null ? undefined : null,
          event: stoppedEvent(stopped, record.state, head(reason, MAX_MESSAGE) ?? ""),
        },
      };
    });
  }

  /**
   * Moves a container whose cleanup failed from `stopping` to `gc` and creates its GC entry,
   * with a "gc" event, in one commit. Already in GC: returns the entry, writes nothing.
   *
   * @param id Container id.
   * @param info What the failed cleanup left to know.
   * @returns The GC entry.
   * @throws {NotFoundError} when there is no record.
   * @throws {ConflictError} when it is running or stopped.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async enterGc(id: string, info: GcEnterInfo = {}): Promise<GcEntry> {
    checkId(id);
    if (info.attempts !== undefined) checkInteger(info.attempts, "attempts", 0);
    if (info.nextAttemptAt !== undefined) checkTime(info.nextAttemptAt, "nextAttemptAt");
    return await this.#transition(id, "enter gc", (record, gc, now) => {
      if (record === null) throw new NotFoundError(id);
      if (record.state === "gc" && gc !== null) return { result: gc };
      if (record.state !== "stopping" && record.state !== "gc") {
        throw new ConflictError(
          id,
          record.state,
          `container ${id} is ${record.state}, not stopping`,
        );
      }
      const entry: GcEntry = {
        id,
        addedAt: now,
        attempts: info.attempts ?? 0,
        nextAttemptAt: info.nextAttemptAt ?? now,
        lastStep: head(info.lastStep ?? null, MAX_MESSAGE),
        lastError: head(info.lastError ?? null, MAX_MESSAGE),
        stderrTail: tail(info.stderrTail ?? "", MAX_TAIL),
        procState: head(info.procState ?? null, 8),
      };
      const inGc: ContainerRecord = { ...record, state: "gc", updatedAt: now };
      return {
        result: entry,
        write: {
          record: inGc,
          gc: entry,
          event: gcEvent(inGc, entry, record.state, "cleanup failed", clampSteps(info.steps ?? [])),
        },
      };
    });
  }

  /**
   * Hands a container to GC directly (seed `gc_add_container`): durable and idempotent per id.
   * An unknown id gets a record in state `gc`; a stopped one, or a running one whose identity
   * is unknown (adopted, or monitored after its pid was gone), moves to `gc` with the given
   * processes (they are what cleanup must kill). An id already in GC keeps its one entry and
   * nothing is written.
   *
   * A running container whose process is known has its exit still to come, and one stopping
   * has its first cleanup under way: taking either would kill a process reaperd follows, or
   * clean it twice, and lose its exit or its attempt. Both are refused, nothing written, in
   * the same commit check as the write, so no exit recorded meanwhile can slip between them.
   *
   * @param input The container, its runtime and its processes.
   * @returns The record, the entry, and whether anything was written.
   * @throws {ConflictError} when the container is running with a known process, or stopping
   *   (`state` says which).
   * @throws {StoreInputError} on a bad id, runtime, path or pid.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async gcAdd(input: GcAddInput): Promise<GcAddResult> {
    checkRegistration(input, 0);
    if (input.nextAttemptAt !== undefined) checkTime(input.nextAttemptAt, "nextAttemptAt");
    return await this.#transition<GcAddResult>(input.id, "gc add", (record, gc, now) => {
      if (record !== null && record.state === "gc" && gc !== null) {
        return { result: { record, entry: gc, added: false } };
      }
      if (record?.state === "running" && record.startTime !== 0) {
        throw new ConflictError(
          input.id,
          "running",
          `container ${input.id} is running (pid ${record.pid}): its exit is still to come`,
        );
      }
      if (record?.state === "stopping") {
        throw new ConflictError(
          input.id,
          "stopping",
          `container ${input.id} is stopping: its first cleanup is under way`,
        );
      }
      const next: ContainerRecord = {
        id: input.id,
        name: input.name ?? record?.name ?? input.id,
        runtime: input.runtime,
        stateDir: input.stateDir,
        mounts: [...(input.mounts ?? record?.mounts ?? [])],
        paths: [...(input.paths ?? record?.paths ?? [])],
        pid: input.pid,
        startTime: input.startTime,
        ppid: input.ppid,
        pStartTime: input.pStartTime,
        state: "gc",
        exit: record?.exit ?? null,
        createdAt: record?.createdAt ?? now,
        updatedAt: now,
      };
      checkRoomForExit(next);
      const entry: GcEntry = {
        id: input.id,
        addedAt: now,
        attempts: 0,
        nextAttemptAt: input.nextAttemptAt ?? now,
        lastStep: null,
        lastError: null,
        stderrTail: "",
        procState: null,
      };
      return {
        result: { record: next, entry, added: true },
        write: {
          record: next,
          gc: entry,
          event: gcEvent(
            next,
            entry,
            record?.state ?? null,
            head(input.reason ?? "gc add", MAX_MESSAGE) ?? "",
            [],
          ),
        },
      };
    });
  }

  /**
   * Keeps the outcome of a failed GC attempt in the entry (attempts, next due time, failing
   * step, stderr tail, process state) with a "gc-attempt" event holding every step's result.
   *
   * @param id Container id.
   * @param attempt The attempt's outcome.
   * @returns The updated GC entry.
   * @throws {NotFoundError} when there is no record.
   * @throws {ConflictError} when the container is not in GC.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async recordGcAttempt(id: string, attempt: GcAttempt): Promise<GcEntry> {
    checkId(id);
    checkInteger(attempt.attempts, "attempts", 0);
    checkTime(attempt.nextAttemptAt, "nextAttemptAt");
    return await this.#transition(id, "record gc attempt", (record, gc, now) => {
      if (record === null) throw new NotFoundError(id);
      if (record.state !== "gc" || gc === null) {
        throw new ConflictError(id, record.state, `container ${id} is not in garbage collection`);
      }
      const entry: GcEntry = {
        ...gc,
        attempts: attempt.attempts,
        nextAttemptAt: attempt.nextAttemptAt,
        lastStep: head(attempt.lastStep, MAX_MESSAGE),
        lastError: head(attempt.lastError, MAX_MESSAGE),
        stderrTail: tail(attempt.stderrTail, MAX_TAIL),
        procState: head(attempt.procState, 8),
      };
      return {
        result: entry,
        write: {
          gc: entry,
          event: gcAttemptEvent(entry, clampSteps(attempt.steps), now),
        },
      };
    });
  }

  /**
   * Ends GC for a container whose cleanup succeeded: gc → stopped, the GC entry deleted, a
   * "gc-done" event, in one commit. Already stopped with no entry: returns the record.
   *
   * @param id Container id.
   * @param steps The successful attempt's steps, kept in the event.
   * @returns The stopped record.
   * @throws {NotFoundError} when there is no record.
   * @throws {ConflictError} when the container is not in GC.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async finishGc(id: string, steps: readonly StepResult[] = []): Promise<ContainerRecord> {
    checkId(id);
    return await this.#transition(id, "finish gc", (record, gc, now) => {
      if (record === null) throw new NotFoundError(id);
      if (record.state === "stopped" && gc === null) return { result: record };
      if (record.state !== "gc") {
        throw new ConflictError(id, record.state, `container ${id} is not in garbage collection`);
      }
      const stopped: ContainerRecord = { ...record, state: "stopped", updatedAt: now };
      return {
        result: stopped,
        write: {
          record: stopped,
          gc: gc === null ? undefined : null,
          event: gcDoneEvent(stopped, gc?.attempts ?? 0, clampSteps(steps)),
        },
      };
    });
  }

  /**
   * Appends the `adopt` event of a container found under the state root with no record, once
   * it is registered. Its state stays as it is.
   *
   * @param id Container id.
   * @param reason Why it was adopted.
   * @returns The event as committed.
   * @throws {NotFoundError} when there is no record.
   * @throws {StoreUnavailableError} when the KV file cannot take the write now.
   */
  async recordAdoption(id: string, reason: string): Promise<ReaperEvent> {
    checkId(id);
    const { event } = await this.#apply(id, "record adoption", (record, _gc, now) => {
      if (record === null) throw new NotFoundError(id);
      const why = head(reason, MAX_MESSAGE) ?? "";
      return { result: null, write: { event: adoptEvent(record, why, now) } };
    });
    // #apply returns no event only when the decision writes nothing, which this one never does.
    if (event === null) throw new StoreUnavailableError("record adoption: not written");
    return event;
  }

  /**
   * Appends the daemon's `restore` event: what it took up at start. The event is there to be
   * read, never a reason not to start: when the KV file cannot take it now, `onWarning` is told
   * and nothing is written.
   *
   * @param counts What the daemon found.
   * @returns `counts`, so that a caller can hand them on.
   */
  async recordRestore(counts: RestoreCounts): Promise<RestoreCounts> {
    try {
      for (let attempt = 0; attempt <= this.#maxRetries; attempt++) {
        // A null commit means another writer took the seq; the next one is fresh.
        const event = await this.#commit(
          "record restore",
          () => {},
          restoreEvent(counts, this.#clock()),
        );
        if (event === null) continue;
        this.#notify(event);
        await this.#maybeTrim();
        return counts;
      }
      throw new StoreUnavailableError("record restore: the event log kept changing");
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      this.#onWarning("the restore event was not written", error);
      return counts;
    }
  }

  // ---------------------------------------------------------------- reads

  /** The container's record, or null when there is none. */
  async get(id: string): Promise<ContainerRecord | null> {
    const entry = await this.#read(
      "get container",
      () => this.#kv.get<ContainerRecord>(containerKey(id)),
    );
    return entry.value;
  }

  /**
   * Every record, in id order, optionally only those in `state`.
   *
   * @param state Keep only records in this state.
   */
  async list(state?: ContainerState): Promise<ContainerRecord[]> {
    return await this.#read("list containers", async () => {
      const out: ContainerRecord[] = [];
      for await (const entry of this.#kv.list<ContainerRecord>({ prefix: [CONTAINER] })) {
        if (state === undefined || entry.value.state === state) out.push(entry.value);
      }
      return out;
    });
  }

  /**
   * Up to `limit` records (`Infinity`: all) in id order, starting after the id `after` (from
   * the first when absent): one page of {@linkcode Store.list}, read without walking the
   * records before it.
   */
  async listPage(after: string | undefined, limit: number): Promise<ContainerRecord[]> {
    return await this.#read("list containers", async () => {
      const out: ContainerRecord[] = [];
      const selector = after === undefined
        ? { prefix: [CONTAINER] }
        : { prefix: [CONTAINER], start: [CONTAINER, after] };
      // `start` is inclusive: take one more and drop `after` itself.
      const options = Number.isFinite(limit) ? { limit: limit + 1 } : {};
      for await (const entry of this.#kv.list<ContainerRecord>(selector, options)) {
        if (entry.value.id === after) continue;
        if (out.length === limit) break;
        out.push(entry.value);
      }
      return out;
    });
  }

  /** The container's GC entry, or null when it is not in GC. */
  async getGc(id: string): Promise<GcEntry | null> {
    const entry = await this.#read("get gc entry", () => this.#kv.get<GcEntry>(gcKey(id)));
    return entry.value;
  }

  /** Every GC entry, in id order. */
  async listGc(): Promise<GcEntry[]> {
    return await this.#read("list gc", async () => {
      const out: GcEntry[] = [];
      for await (const entry of this.#kv.list<GcEntry>({ prefix: [GC] })) out.push(entry.value);
      return out;
    });
  }

  /** Whether the container is in GC (seed `gc_is_gc_progress`), read from the store. */
  async isInGc(id: string): Promise<boolean> {
    return (await this.getGc(id)) !== null;
  }

  /** The container's record and GC entry, read together; null when it is not in GC. */
  async gcView(id: string): Promise<GcView | null> {
    const [record, entry] = await this.#read(
      "get gc view",
      () => this.#kv.getMany<[ContainerRecord, GcEntry]>([containerKey(id), gcKey(id)]),
    );
    if (record.value === null || entry.value === null) return null;
    return { record: record.value, entry: entry.value };
  }

  /** Every container in GC with its record, in id order. */
  async listGcViews(): Promise<GcView[]> {
    const entries = await this.listGc();
    const out: GcView[] = [];
    // getMany reads at most 10 keys at a time.
    for (let i = 0; i < entries.length; i += 10) {
      const batch = entries.slice(i, i + 10);
      const records = await this.#read(
        "list gc views",
        () => this.#kv.getMany<ContainerRecord[]>(batch.map((e) => containerKey(e.id))),
      );
      batch.forEach((entry, j) => {
        const record = records[j]?.value;
        if (record) out.push({ record, entry });
      });
    }
    return out;
  }

  /**
   * Events with a seq greater than `afterSeq`, oldest first, at most `limit` of them. Page
   * by passing the last seq received. Events older than {@linkcode Store.firstSeq} may have
   * been trimmed.
   *
   * @param afterSeq Exclusive lower bound (0 for the whole log).
   * @param limit Most events returned (1–10 000, default 1 000).
   */
  async eventsSince(afterSeq: number, limit = 1_000): Promise<ReaperEvent[]> {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
      throw new StoreInputError(`since must be an integer >= 0, got ${afterSeq}`);
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_EVENT_PAGE) {
      throw new StoreInputError(`limit must be an integer in 1..${MAX_EVENT_PAGE}, got ${limit}`);
    }
    const recent = this.#recentSince(afterSeq, limit);
    if (recent !== null) return recent;
    return await this.#read("list events", async () => {
      const out: ReaperEvent[] = [];
      const iter = this.#kv.list<ReaperEvent>(
        { prefix: [EVENT], start: eventKey(afterSeq + 1) },
        { limit },
      );
      for await (const entry of iter) out.push(entry.value);
      return out;
    });
  }

  /** The seq of the last committed event, 0 when the log is empty. */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** The oldest seq the log may still hold; older ones were trimmed. */
  get firstSeq(): number {
    return this.#firstSeq;
  }

  /** How many records are in each state. */
  async countByState(): Promise<StateCounts> {
    const counts: StateCounts = { running: 0, stopping: 0, gc: 0, stopped: 0 };
    await this.#read("count containers", async () => {
      for await (const entry of this.#kv.list<ContainerRecord>({ prefix: [CONTAINER] })) {
        counts[entry.value.state]++;
      }
    });
    return counts;
  }

  /**
   * Calls `listener` with each event after it is committed (to wake up event streams and
   * waiters). A listener that throws is reported to `onWarning` and kept.
   *
   * @returns A function that removes the listener.
   */
  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Forgets the records of containers that have been `stopped` since before `before` (ms since
   * the epoch), so that a host that runs containers for years does not keep every one of them.
   * A record that changes meanwhile (the id registered again) is left alone. Events about the
   * forgotten containers stay until the event log trims them.
   *
   * The records due are found through the retention index (`["stopped", stoppedAt, id]`), so a
   * sweep reads the records it deletes and no other. A store written before the index existed
   * is indexed by the first sweep, once.
   *
   * @returns How many records were deleted.
   * @throws {StoreUnavailableError} when the KV file cannot take the deletes now.
   */
  async forgetStopped(before: number): Promise<number> {
    // No time is before NaN, yet as a key NaN sorts after every number.
    if (Number.isNaN(before)) return 0;
    await this.#indexStopped();
    let deleted = 0;
    // Inclusive: the last index key of the page before, skipped when read again.
    let start: Deno.KvKey = [STOPPED];
    for (;;) {
      const { page, last, full } = await this.#read("list stopped containers", async () => {
        const found: DueRecord[] = [];
        let last: Deno.KvKey | null = null;
        let seen = 0;
        const iter = this.#kv.list<null>({ start, end: [STOPPED, before] }, {
          limit: FORGET_PAGE + 1,
        });
        for await (const entry of iter) {
          if (seen === FORGET_PAGE) break;
          if (sameKey(entry.key, start)) continue;
          seen++;
          last = entry.key;
          const [, at, id] = entry.key;
          if (typeof at !== "number" || typeof id !== "string") continue;
          found.push({ index: entry, at, id, record: null });
        }
        return { page: found, last, full: seen === FORGET_PAGE };
      });
      if (page.length > 0) {
        await this.#readDue(page);
        deleted += await this.#forgetDue(page);
      }
      if (!full || last === null) break;
      start = last;
    }
    return deleted;
  }

  /** Reads the record each index key of `page` names. */
  async #readDue(page: DueRecord[]): Promise<void> {
    const reads: Promise<void>[] = [];
    for (let at = 0; at < page.length; at += MAX_GET_MANY) {
      const part = page.slice(at, at + MAX_GET_MANY);
      reads.push(
        this.#read("read stopped containers", async () => {
          const records = await this.#kv.getMany<ContainerRecord[]>(
            part.map((due) => containerKey(due.id)),
          );
          part.forEach((due, i) => due.record = records[i]!);
        }),
      );
    }
    await Promise.all(reads);
  }

  /**
   * Deletes each record of `page` still stopped since the time its index key names, with that
   * key, and drops index keys that name no such record. Returns how many records went.
   */
  async #forgetDue(page: readonly DueRecord[]): Promise<number> {
    // One check and at most two deletes each: Deno KV's check count is the bound.
    const stage = (op: Deno.AtomicOperation, due: DueRecord): boolean => {
      const record = due.record!;
      if (record.value?.state === "stopped" && record.value.updatedAt === due.at) {
        op.check(record).delete(record.key).delete(due.index.key);
        return true;
      }
      // The record left `stopped` or is gone without its key (written by hand, or by a store
      // before the index): the key alone goes, unless it was written again meanwhile.
      op.check(due.index).delete(due.index.key);
      return false;
    };
    const together = this.#kv.atomic();
    let due = 0;
    for (const entry of page) if (stage(together, entry)) due++;
    if ((await this.#read("forget stopped containers", () => together.commit())).ok) return due;
    // One of them changed since it was read: the others still go, one by one.
    let deleted = 0;
    for (const entry of page) {
      const alone = this.#kv.atomic();
      const isDue = stage(alone, entry);
      if ((await this.#read("forget a stopped container", () => alone.commit())).ok && isDue) {
        deleted++;
      }
    }
    return deleted;
  }

  /**
   * Gives every stopped record its retention index key, once per store: a store written
   * before the index existed has none. Each key is written with a check on the record as
   * scanned; a record changed since was indexed by the transition that changed it.
   */
  async #indexStopped(): Promise<void> {
    if (this.#stoppedIndexed) return;
    const mark = await this.#read("read retention index mark", () => {
      return this.#kv.get(STOPPED_INDEX_KEY);
    });
    if (mark.versionstamp !== null) {
      this.#stoppedIndexed = true;
      return;
    }
    const stopped = await this.#read("index stopped containers", async () => {
      const found: { record: Deno.AtomicCheck; key: Deno.KvKey }[] = [];
      for await (const entry of this.#kv.list<ContainerRecord>({ prefix: [CONTAINER] })) {
        const id = entry.key[1];
        if (entry.value.state !== "stopped" || typeof id !== "string") continue;
        found.push({
          record: { key: entry.key, versionstamp: entry.versionstamp },
          key: stoppedKey(entry.value.updatedAt, id),
        });
      }
      return found;
    });
    // One check and one set each.
    for (let at = 0; at < stopped.length; at += MAX_CHECKS) {
      const batch = stopped.slice(at, at + MAX_CHECKS);
      const together = this.#kv.atomic();
      for (const { record, key } of batch) together.check(record).set(key, null);
      if ((await this.#read("index stopped containers", () => together.commit())).ok) continue;
      for (const { record, key } of batch) {
        const alone = this.#kv.atomic().check(record).set(key, null);
        await this.#read("index a stopped container", () => alone.commit());
      }
    }
    await this.#read(
      "write retention index mark",
      () =>
        this.#kv.atomic().check(mark).set(STOPPED_INDEX_KEY, { indexedAt: this.#clock() })
          .commit(),
    );
    this.#stoppedIndexed = true;
  }

  /**
   * Forgets one stopped container's record now (`reaperd rm`), as retention would later. Only
   * a stopped record with no GC entry goes; the delete checks what it read, so a container
   * registered again meanwhile stays.
   *
   * @param id Container id.
   * @returns The record that was forgotten.
   * @throws {NotFoundError} when there is no record.
   * @throws {ConflictError} when it is running, stopping or in GC.
   * @throws {StoreUnavailableError} when the KV file cannot take the delete now.
   */
  async forget(id: string): Promise<ContainerRecord> {
    checkId(id);
    for (let attempt = 0; attempt <= this.#maxRetries; attempt++) {
      const [record, gc] = await this.#read(
        "forget a container",
        () => this.#kv.getMany<[ContainerRecord, GcEntry]>([containerKey(id), gcKey(id)]),
      );
      if (record.value === null) throw new NotFoundError(id);
      const state = record.value.state;
      if (state !== "stopped" || gc.value !== null) {
        throw new ConflictError(
          id,
          state,
          `container ${id} is ${gc.value === null ? state : "in GC"}: only a stopped one can go`,
        );
      }
      const op = this.#kv.atomic();
      op.check(record, gc).delete(containerKey(id)).delete(stoppedKey(record.value.updatedAt, id));
      this.#running.drop(id);
      if ((await this.#read("forget a container", () => op.commit())).ok) return record.value;
    }
    throw new StoreUnavailableError(`forget ${id}: the record kept changing; try again`);
  }

  /**
   * Deletes the oldest events so that at most `maxEvents` remain (down to `maxEvents` minus
   * the trim batch), at most 1 000 deletes per commit. Writes call it on their own when the
   * log grows past `maxEvents`; call it directly after lowering the knob.
   *
   * @returns How many events were deleted.
   * @throws {StoreUnavailableError} when the KV file cannot take the deletes now.
   */
  async trimEvents(): Promise<number> {
    if (this.#nextSeq - this.#firstSeq <= this.#maxEvents) return 0;
    const cutoff = this.#nextSeq - (this.#maxEvents - this.#trimSlack);
    let deleted = 0;
    for (;;) {
      const keys = await this.#read("trim events", async () => {
        const found: Deno.KvKey[] = [];
        const iter = this.#kv.list({ prefix: [EVENT], end: eventKey(cutoff) }, {
          limit: MAX_MUTATIONS,
        });
        for await (const entry of iter) found.push(entry.key);
        return found;
      });
      if (keys.length === 0) break;
      const op = this.#kv.atomic();
      for (const key of keys) op.delete(key);
      await this.#read("trim events", () => op.commit());
      deleted += keys.length;
      if (keys.length < MAX_MUTATIONS) break;
    }
    this.#firstSeq = Math.max(this.#firstSeq, cutoff);
    return deleted;
  }

  // ---------------------------------------------------------------- machinery

  /**
   * Reads the record and GC entry, lets `decide` choose, and commits its choice together with
   * checks on both versionstamps, retrying from the read when either changed meanwhile.
   */
  async #transition<T>(
    id: string,
    what: string,
    decide: (record: ContainerRecord | null, gc: GcEntry | null, now: number) => Decision<T>,
  ): Promise<T> {
    return (await this.#apply(id, what, decide)).result;
  }

  /** Like #transition, and also returns the committed event (null when nothing was written). */
  async #apply<T>(
    id: string,
    what: string,
    decide: (record: ContainerRecord | null, gc: GcEntry | null, now: number) => Decision<T>,
  ): Promise<{ result: T; event: ReaperEvent | null }> {
    for (let attempt = 0;; attempt++) {
      const [record, gc] = await this.#read(
        what,
        () => this.#kv.getMany<[ContainerRecord, GcEntry]>([containerKey(id), gcKey(id)]),
      );
      const now = this.#clock();
      const decision = decide(record.value, gc.value, now);
      const write = decision.write;
      if (write === undefined) return { result: decision.result, event: null };
      const event = await this.#commit(
        what,
        (op) => stageWrite(op, id, record, gc, write),
        write.event,
        (versionstamp) => {
          if (write.record !== undefined) this.#running.wrote(id, write.record, versionstamp);
        },
      );
      if (event !== null) {
        this.#notify(event);
        await this.#maybeTrim();
        return { result: decision.result, event };
      }
      if (attempt >= this.#maxRetries) {
        throw new StoreUnavailableError(
          `${what} ${id}: the record kept changing during ${attempt + 1} tries; try again`,
        );
      }
    }
  }

  /**
   * Commits `build`'s mutations plus the next event under the write lock. Returns the event,
   * or null when a check failed (nothing was written).
   */
  async #commit(
    what: string,
    build: (op: Deno.AtomicOperation) => void,
    event: NewEvent,
    committed: (versionstamp: string) => void = () => {},
  ): Promise<ReaperEvent | null> {
    const events = await this.#commitWithEvents(what, [{ event }], build, committed);
    return events === null ? null : events[0]!;
  }

  /** Runs `fn` after every earlier call has finished (one commit at a time). */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#writeTail;
    let release = () => {};
    this.#writeTail = new Promise<void>((resolve) => release = resolve);
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Loads the first and last event seq from the file. */
  async #loadSeq(): Promise<void> {
    const [first, last] = await this.#read("load event seq", async () => {
      const edge = async (reverse: boolean) => {
        for await (const e of this.#kv.list({ prefix: [EVENT] }, { limit: 1, reverse })) {
          return typeof e.key[1] === "number" ? e.key[1] : null;
        }
        return null;
      };
      return [await edge(false), await edge(true)] as const;
    });
    this.#nextSeq = Math.max(this.#nextSeq, (last ?? 0) + 1);
    this.#firstSeq = first ?? this.#nextSeq;
    this.#seqStale = false;
  }

  async #maybeTrim(): Promise<void> {
    if (this.#trimming || this.#nextSeq - this.#firstSeq <= this.#maxEvents) return;
    this.#trimming = true;
    try {
      await this.trimEvents();
    } catch (error) {
      // The transition is committed; the next write tries the trim again.
      this.#onWarning("event log trim failed", error);
    } finally {
      this.#trimming = false;
    }
  }

  /**
   * The events after `afterSeq` from the newest committed ones kept in memory, or null when
   * memory does not hold every one of them for sure (then the file is read). A follower of the
   * log, woken by a commit, so gets its event without another trip to the KV file.
   */
  #recentSince(afterSeq: number, limit: number): ReaperEvent[] | null {
    const recent = this.#recent;
    if (this.#seqStale || recent.length === 0) return null;
    const first = recent[0]!.seq;
    const last = recent[recent.length - 1]!.seq;
    if (last !== this.lastSeq || afterSeq + 1 < first || afterSeq + 1 < this.#firstSeq) {
      return null;
    }
    const from = Math.max(0, afterSeq + 1 - first);
    return recent.slice(from, from + limit);
  }

  #notify(event: ReaperEvent): void {
    // Kept only as a run without gaps: a seq out of order starts the run again.
    const recent = this.#recent;
    if (recent.length > 0 && recent[recent.length - 1]!.seq + 1 !== event.seq) recent.length = 0;
    recent.push(event);
    if (recent.length > RECENT_EVENTS) recent.splice(0, recent.length - RECENT_EVENTS / 2);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onWarning("event listener threw", error);
      }
    }
  }

  /** Runs a KV call, turning whatever it throws into a StoreError. */
  async #read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw storeFailure(what, error);
    }
  }
}

/**
 * Adds to `op` a check on the record and GC entry of `id` as read, and `write`'s changes to
 * them.
 */
function stageWrite(
  op: Deno.AtomicOperation,
  id: string,
  record: Deno.KvEntryMaybe<ContainerRecord>,
  gc: Deno.KvEntryMaybe<GcEntry>,
  write: NonNullable<Decision<unknown>["write"]>,
): void {
  op.check(record, gc);
  if (write.record !== undefined) {
    op.set(containerKey(id), write.record);
    stageStoppedIndex(op, id, record.value, write.record);
  }
  if (write.gc === null) op.delete(gcKey(id));
  else if (write.gc !== undefined) op.set(gcKey(id), write.gc);
  write.also?.(op);
}

/** Whether `record` is the running record of the run that `item` names. */
function sameRun(
  record: ContainerRecord | null,
  item: { pid: number; startTime: number },
): record is ContainerRecord {
  return record !== null && record.state === "running" && record.pid === item.pid &&
    record.startTime === item.startTime;
}

/**
 * Adds to `op` what keeps the retention index true when the record of `id` goes from `was` to
 * `next`: its key goes when it leaves `stopped` (or is stopped anew), a key comes when it
 * becomes `stopped`.
 */
function stageStoppedIndex(
  op: Deno.AtomicOperation,
  id: string,
  was: ContainerRecord | null,
  next: ContainerRecord,
): void {
  const wasAt = was?.state === "stopped" ? was.updatedAt : null;
  const nextAt = next.state === "stopped" ? next.updatedAt : null;
  if (wasAt === nextAt) return;
  if (wasAt !== null) op.delete(stoppedKey(wasAt, id));
  if (nextAt !== null) op.set(stoppedKey(nextAt, id), null);
}

/**
 * What registering `input` does to a container whose record and GC entry are as read: nothing
 * (the same run again), a new `running` record with its "monitor" event, or a ConflictError.
 */
function decideRegister(
  input: RegisterInput,
  record: ContainerRecord | null,
  gc: GcEntry | null,
  now: number,
): Decision<RegisterResult> {
  if (record !== null && record.state === "running") {
    if (record.pid === input.pid && record.startTime === input.startTime) {
      return { result: { record, created: false } };
    }
    // Adopted with unknown identity (found under the state root), now named by its engine.
    const identifies = record.pid === 0 && record.startTime === 0 && input.pid > 0;
    if (!identifies) {
      throw new ConflictError(
        input.id,
        record.state,
        `container ${input.id} is running with pid ${record.pid} (start time ${record.startTime}); refusing pid ${input.pid} (start time ${input.startTime})`,
      );
    }
  }
  // The same process again (an engine retrying its monitor of a run that ended): a new run is
  // a new process; taking it would overwrite the exit recorded and watch a FIFO for nothing.
  if (
    record !== null && record.state === "stopped" && input.startTime !== 0 &&
    record.pid === input.pid && record.startTime === input.startTime
  ) {
    throw new ConflictError(
      input.id,
      record.state,
      `container ${input.id}'s run with pid ${input.pid} (start time ${input.startTime}) already exited and was cleaned up (reaperd inspect ${input.id}); a new run has a new process`,
    );
  }
  if (record !== null && record.state !== "stopped" && record.state !== "running") {
    throw new ConflictError(
      input.id,
      record.state,
      `container ${input.id} is ${record.state}; it can be registered again once stopped`,
    );
  }
  const created: ContainerRecord = {
    id: input.id,
    name: input.name ?? input.id,
    runtime: input.runtime,
    stateDir: input.stateDir,
    mounts: [...(input.mounts ?? [])],
    paths: [...(input.paths ?? [])],
    pid: input.pid,
    startTime: input.startTime,
    ppid: input.ppid,
    pStartTime: input.pStartTime,
    ...(input.memoryCgroup === undefined ? {} : {
      memoryCgroup: { dir: input.memoryCgroup.dir, oomKills: input.memoryCgroup.oomKills },
    }),
    state: "running",
    exit: null,
    createdAt: now,
    updatedAt: now,
  };
  checkRoomForExit(created);
  return {
    result: { record: created, created: true },
    write: {
      record: created,
      // A stopped record never has a GC entry; drop a stray one rather than inherit it.
      gc: gc === null ? undefined : null,
      event: monitorEvent(created, record !== null),
    },
  };
}

/** Checks the fields of a registration; `minPid` is 0 where a gone init may be named. */
function checkRegistration(input: RegisterInput, minPid: number): void {
  checkId(input.id);
  checkRuntime(input.runtime);
  checkPath(input.stateDir, "stateDir");
  checkInteger(input.pid, "pid", minPid);
  checkInteger(input.startTime, "startTime", 0);
  checkInteger(input.ppid, "ppid", 0);
  checkInteger(input.pStartTime, "pStartTime", 0);
  if (input.name !== undefined) checkText(input.name, "name");
  if (input.mounts !== undefined) checkPaths(input.mounts, "mounts");
  if (input.paths !== undefined) checkPaths(input.paths, "paths");
  if (input.memoryCgroup !== undefined) {
    checkPath(input.memoryCgroup.dir, "memoryCgroup.dir");
    checkInteger(input.memoryCgroup.oomKills, "memoryCgroup.oomKills", 0);
  }
}

/** The largest exit the store ever writes into a record (see clampExit). */
const LARGEST_EXIT: ExitStatus = {
  code: 255,
  signal: 64,
  known: true,
  oomKilled: true,
  reason: "\u20ac".repeat(MAX_MESSAGE),
  at: Number.MAX_SAFE_INTEGER,
};

/**
 * Throws StoreInputError, naming the field that takes the room, unless `record` stays within
 * Deno KV's value limit once it holds the largest exit it could get: a record that cannot take
 * its exit is refused at the door, not when the exit comes and could no longer be kept.
 */
function checkRoomForExit(record: ContainerRecord): void {
  const bytes = valueSize({ ...record, state: "stopping", exit: LARGEST_EXIT });
  if (bytes <= VALUE_BUDGET) return;
  const fields = (["mounts", "paths", "stateDir", "name"] as const)
    .map((field) => ({ field, bytes: valueSize(record[field]) }))
    .sort((a, b) => b.bytes - a.bytes);
  const largest = fields[0]!;
  throw new StoreInputError(
    `${largest.field} too large: ${largest.bytes} bytes (${
      fields.map((f) => `${f.field} ${f.bytes}`).join(", ")
    }); the record of ${record.id} with its exit would take ${bytes} bytes, and the store keeps ` +
      `at most ${VALUE_BUDGET} bytes per record`,
  );
}

/**
 * `exit` as it fits into `record` within the value limit: whole, or with its reason cut short
 * (a record stored before records were sized at the door may have no room for all of it; the
 * code matters more than the words), or null when not even the code fits. `recordBytes` is the
 * estimate of the record as it will be written with that exit (its `updatedAt` changes, and a
 * number's estimate does not depend on its value), so the caller sizes its commit without
 * measuring the record again.
 */
function fitExit(
  record: ContainerRecord,
  exit: ExitStatus,
): { exit: ExitStatus; recordBytes: number } | null {
  const size = (e: ExitStatus) => valueSize({ ...record, state: "stopping", exit: e });
  const whole = size(exit);
  if (whole <= VALUE_BUDGET) return { exit, recordBytes: whole };
  const room = VALUE_BUDGET - size({ ...exit, reason: "" });
  if (room < 0) return null;
  // Two bytes a character at most.
  const cut = { ...exit, reason: exit.reason.slice(0, Math.floor(room / 2)) };
  return { exit: cut, recordBytes: size(cut) };
}

/** Why an exit cannot be written into a record that is already too large for it. */
function tooLargeWithExit(id: string, bytes: number): string {
  return `the record of ${id} takes ${bytes} bytes and has no room for its exit within the ` +
    `store's ${VALUE_BUDGET} bytes per record (its mounts or paths are too large)`;
}

/**
 * Classifies what Deno KV threw: limit violations are the caller's input; everything else
 * ("database is locked", disk full, I/O errors, a closed handle) may pass, so it is retryable.
 */
function storeFailure(what: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const message = errorMessage(error);
  if (/too large|too many/i.test(message)) {
    return new StoreInputError(`${what}: ${message}`, { cause: error });
  }
  return new StoreUnavailableError(`${what}: ${message}`, { cause: error });
}
