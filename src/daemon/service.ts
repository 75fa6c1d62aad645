/**
 * The daemon's service: the one place where the supervisor, the store, the cleaner and the
 * collector meet. It implements {@linkcode ReaperApi} (what the socket serves) and the exit
 * path of DESIGN.md §4: an exit is decoded → recorded durably as `stopping` → cleaned once →
 * `stopped`, or handed to the collector (`gc`) when cleanup fails or the process will not die.
 *
 * Exits that cannot be written because the store is failing (a full disk) are kept in memory,
 * reported as "degraded" on health and metrics, and written as soon as the store takes them.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { idProblem } from "../config.ts";
import type { Collector } from "../gc/collector.ts";
import type { Cleaner } from "../gc/cleaner.ts";
import {
  ConflictError,
  NotFoundError,
  StoreInputError,
  StoreUnavailableError,
} from "../store/errors.ts";
import { EXIT_BATCH, type ExitInput, type ExitRecordResult, type Store } from "../store/store.ts";
import { ExitFifoError, exitFifoName } from "../supervisor/exit_fifo.ts";
import { stateDirPathProblem } from "../runtime/state_dir.ts";
import { HeldFifos } from "../supervisor/held_fifos.ts";
import { type ExitReport, Supervisor } from "../supervisor/supervisor.ts";
import * as libc from "../sys/libc.ts";
import { isValidPid, readProcStat } from "../sys/proc.ts";
import type { ReaperEvent } from "../store/events.ts";
import type { ContainerRecord } from "../types.ts";
import {
  ApiError,
  type CreateFifoRequest,
  type CreateFifoResponse,
  type GcAddRequest,
  type GcStatus,
  type Health,
  type ListPage,
  type MonitorRequest,
  type ReaperApi,
} from "./api.ts";
import { Batcher } from "./batcher.ts";
import { Counter, Gauge, Histogram, Registry } from "./metrics.ts";
import { OomWatch } from "./oom_watch.ts";
import { sweepStateRoot } from "./sweep.ts";
import { errorMessage } from "../error_message.ts";
import { VERSION } from "../version.ts";
import { FifoReadEnds } from "./fd_store.ts";

export { VERSION };

/** The parts the service wires together. */
export interface ServiceParts {
  config: Config;
  store: Store;
  cleaner: Cleaner;
  collector: Collector;
  log: Logger;
  /** FIFO read ends kept in the service manager's fd store (default: none kept). */
  readEnds?: FifoReadEnds;
  /** Wall clock (ms since the epoch). */
  now?: () => number;
  /** What was found wrong with the store at start (damage, lost history): health reports it. */
  storeProblems?: readonly string[];
}

const RESTORED_GONE = "exited while reaperd was down";
const PENDING_RETRY_MS = 1000;
const RECORDING_PRIORITY_MS = 2000;

/** The daemon's service. Create it, `restore()` it, serve it, `close()` it. */
export class ReaperService implements ReaperApi {
  readonly #config: Config;
  readonly #store: Store;
  readonly #cleaner: Cleaner;
  readonly #collector: Collector;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #supervisor: Supervisor;
  readonly #held: HeldFifos;
  readonly #readEnds: FifoReadEnds;
  readonly #startedAt: number;
  /** Exits decoded but not yet written, by container id. */
  readonly #pending = new Map<string, ExitReport>();
  #pendingTimer: ReturnType<typeof setTimeout> | null = null;
  #storeProblem: string | null = null;
  readonly #storeProblemsAtStart: readonly string[];
  /** Exits decoded together are committed together. */
  readonly #exitWriter: Batcher<ExitInput, ExitRecordResult>;
  /** Exits being written to the store now; cleanups wait for them (see #recordingDrained). */
  #recording = 0;
  readonly #recordingWaiters: Array<() => void> = [];
  /** Exit-path cleanups in flight (bounded by the GC concurrency). */
  #cleaning = 0;
  readonly #cleanQueue: Array<() => void> = [];
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;
  /** Memory cgroups of the watched containers, to tell an OOM kill at exit. */
  readonly #oom = new OomWatch();

  readonly #metrics = new Registry();
  readonly #exits = this.#metrics.add(
    new Counter("reaperd_exits_total", "Container exits recorded, by whether the status is known."),
  );
  readonly #stepFailures = this.#metrics.add(
    new Counter("reaperd_cleanup_step_failures_total", "Cleanup steps that failed, by step."),
  );
  readonly #cleanups = this.#metrics.add(
    new Counter("reaperd_cleanups_total", "Cleanup attempts, by result (ok, failed)."),
  );
  readonly #oomKills = this.#metrics.add(
    new Counter(
      "reaperd_oom_kills_total",
      "Container exits recorded as out of memory (the memory cgroup's OOM killer fired).",
    ),
  );
  readonly #exitLatency = this.#metrics.add(
    new Histogram(
      "reaperd_exit_record_latency_seconds",
      "Time from an exit being decoded to its record being durable.",
      [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    ),
  );

  constructor(parts: ServiceParts) {
    this.#config = parts.config;
    this.#store = parts.store;
    this.#cleaner = parts.cleaner;
    this.#collector = parts.collector;
    this.#log = parts.log;
    this.#now = parts.now ?? Date.now;
    this.#storeProblemsAtStart = parts.storeProblems ?? [];
    this.#exitWriter = new Batcher(EXIT_BATCH, (items) => this.#store.recordExits(items));
    this.#startedAt = this.#now();
    this.#oomKills.inc({}, 0);
    this.#readEnds = parts.readEnds ??
      new FifoReadEnds({ stateRoot: parts.config.stateRoot, socket: null, log: parts.log });
    this.#supervisor = new Supervisor({
      onDone: (fifo) => this.#readEnds.done(fifo),
      onExit: (report) => this.#track(this.#onExit(report)),
      onError: (error) => this.#log.error("supervisor: {error}", { error: String(error) }),
    });
    this.#held = new HeldFifos(
      parts.config.heldFifoTimeoutMs,
      (fifo) => {
        this.#log.warn("released the read end of {fifo}: never armed by monitor", { fifo });
        this.#readEnds.done(fifo);
      },
      (fifo) => this.#readEnds.open(fifo),
    );
    this.#metrics.add(
      new Gauge("reaperd_monitored_containers", "Containers whose exit FIFO is watched.", () => [
        [{}, this.#supervisor.size],
      ]),
    );
    this.#metrics.add(
      new Gauge("reaperd_held_fifos", "Read ends held by create-fifo, not armed yet.", () => [
        [{}, this.#held.size],
      ]),
    );
    this.#metrics.add(
      new Gauge(
        "reaperd_gc_entries",
        "Containers in GC, by /proc state of a process that will not die.",
        () => {
          const stats = this.#collector.stats();
          return [[{ state: "all" }, stats.entries], [{ state: "D" }, stats.dState]];
        },
      ),
    );
    this.#metrics.add(
      new Gauge("reaperd_pending_exit_writes", "Exits decoded but not yet durable.", () => [
        [{}, this.#pending.size],
      ]),
    );
    this.#metrics.add(
      new Gauge("reaperd_degraded", "1 when the store cannot be written.", () => [
        [{}, this.#storeProblem === null ? 0 : 1],
      ]),
    );
  }

  /**
   * Start-up in the seed's order: load the GC list → start the supervisor → restore the
   * containers that were running or stopping → start GC.
   */
  async restore(): Promise<{ monitored: number; exited: number; resumed: number }> {
    await this.#collector.restore();
    this.#supervisor.start();
    let monitored = 0;
    let exited = 0;
    // Both lists are read before anything is re-armed: an exit decided while re-arming is
    // recorded (running → stopping) and cleaned by its own exit path, so a later read of the
    // stopping list would start a second, concurrent cleanup of the same container.
    const running = await this.#store.list("running");
    const stopping = await this.#store.list("stopping");
    for (const record of running) {
      if (this.#rearm(record)) monitored++;
      else exited++;
    }
    for (const record of stopping) this.#track(this.#cleanAfterExit(record.id));
    // Read ends handed back that no running container took: held again for their monitor
    // (then not swept as orphans), or let go.
    await this.#readEnds.settle(this.#store, this.#held);
    const swept = await sweepStateRoot({
      stateRoot: this.#config.stateRoot,
      runtimes: Object.keys(this.#config.runtimes),
      store: this.#store,
      log: this.#log,
      watch: (record, fifo, fd) => this.#watch(record, fifo, fd),
      exited: (report) => this.#track(this.#onExit(report)),
      held: (fifo) => this.#held.has(fifo),
    });
    this.#metrics.add(
      new Gauge("reaperd_adopted_containers", "Containers found at start with no record.", () => [
        [{}, swept.adopted.length],
      ]),
    );
    this.#collector.start();
    return await this.#store.recordRestore({
      monitored,
      exited,
      resumed: stopping.length,
      adopted: swept.adopted.length,
    });
  }

  /** Re-arms a running container's FIFO; false when its exit had to be decided at once. */
  #rearm(record: ContainerRecord): boolean {
    this.#oom.watch(record);
    const pidInfo = {
      pid: record.pid,
      startTime: record.startTime,
      ppid: record.ppid,
      pStartTime: record.pStartTime,
    };
    const fifo = exitFifoName(record.stateDir);
    let fd: number;
    try {
      fd = this.#readEnds.open(fifo);
    } catch (error) {
      const reason = `exit FIFO unusable after restart: ${(error as Error).message}`;
      this.#log.warn("restore {id}: {reason}", { id: record.id, reason });
      this.#track(this.#onExit({
        id: record.id,
        name: record.name,
        runtime: record.runtime,
        fifo,
        pidInfo,
        exit: { code: null, signal: null, known: false, reason, at: this.#now() },
      }));
      return false;
    }
    this.#watch(record, fifo, fd, RESTORED_GONE);
    return this.#supervisor.has(record.id);
  }

  /** Hands a recorded container's FIFO read end to the supervisor (which then owns `fd`). */
  #watch(record: ContainerRecord, fifo: string, fd: number, goneReason?: string): void {
    const { id, name, runtime, pid, startTime, ppid, pStartTime } = record;
    this.#supervisor.add({
      id,
      name,
      runtime,
      fifo,
      fd,
      pidInfo: { pid, startTime, ppid, pStartTime },
      ...(goneReason === undefined ? {} : { goneReason }),
    });
  }

  /** Stops watching and waits (bounded) for exit-path work in flight. The store stays open. */
  async close(graceMs = 10_000): Promise<void> {
    this.#closed = true;
    if (this.#pendingTimer !== null) clearTimeout(this.#pendingTimer);
    this.#held.closeAll();
    this.#readEnds.close();
    await this.#supervisor.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inFlight]),
      new Promise((resolve) => timer = setTimeout(resolve, graceMs)),
    ]);
    clearTimeout(timer);
    await this.#collector.stop();
  }

  // --- the exit path -------------------------------------------------------------------------

  #track<T>(work: Promise<T>): void {
    const p = work.catch((error) =>
      this.#log.error("exit path failed: {error}", { error: String(error) })
    );
    this.#inFlight.add(p);
    p.finally(() => this.#inFlight.delete(p));
  }

  async #onExit(report: ExitReport): Promise<void> {
    const { id, pidInfo } = report;
    const exit = this.#oom.judge(id, pidInfo.pid, pidInfo.startTime, report.exit);
    this.#log.info(
      "exit of {id}: {reason}",
      { id, runtime: report.runtime, code: exit.code, known: exit.known, reason: exit.reason },
    );
    let result: ExitRecordResult;
    this.#recording++;
    try {
      result = await this.#exitWriter.add({
        id,
        pid: report.pidInfo.pid,
        startTime: report.pidInfo.startTime,
        exit,
      });
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        this.#keepPending(report, error);
        return;
      }
      throw error;
    } finally {
      this.#recordingDone();
    }
    report.acknowledge?.();
    this.#oom.forget(id);
    this.#storeWritable();
    this.#exitLatency.observe(Math.max(0, this.#now() - exit.at) / 1000);
    if (result.outcome === "refused") {
      this.#log.error("exit of {id} could not be recorded: {reason}", {
        id,
        reason: result.reason,
      });
      return;
    }
    if (result.outcome === "ignored") {
      this.#log.debug("exit of {id} ignored: already recorded or another run", { id });
      return;
    }
    this.#exits.inc({ known: String(exit.known) });
    if (exit.oomKilled === true) this.#oomKills.inc();
    await this.#cleanAfterExit(id);
  }

  #recordingDone(): void {
    if (--this.#recording > 0) return;
    for (const wake of this.#recordingWaiters.splice(0)) wake();
  }

  /**
   * Waits (at most RECORDING_PRIORITY_MS) until no exit is being recorded. Recording is what an
   * exit's latency is measured by; cleanups spawn runtimes and would take the CPU from a burst
   * of exits still waiting for their commit, so they start once the burst is durable.
   */
  #recordingDrained(): Promise<void> {
    if (this.#recording === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, RECORDING_PRIORITY_MS);
      this.#recordingWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #keepPending(report: ExitReport, error: Error): void {
    this.#pending.set(report.id, report);
    if (this.#storeProblem === null) {
      this.#log.error("store cannot record exits, keeping them in memory: {error}", {
        error: error.message,
      });
    }
    this.#storeProblem = error.message;
    if (this.#pendingTimer === null && !this.#closed) {
      this.#pendingTimer = setTimeout(() => {
        this.#pendingTimer = null;
        this.#track(this.#flushPending());
      }, PENDING_RETRY_MS);
    }
  }

  /** A write went through: the store is no longer a reason to be degraded, unless exits wait. */
  #storeWritable(): void {
    if (this.#pending.size === 0) this.#storeProblem = null;
  }

  async #flushPending(): Promise<void> {
    const reports = [...this.#pending.values()];
    this.#pending.clear();
    this.#storeProblem = null;
    for (const report of reports) await this.#onExit(report);
    if (this.#storeProblem === null && reports.length > 0) {
      this.#log.info("store writable again: {count} pending exits recorded", {
        count: reports.length,
      });
    }
  }

  /**
   * One cleanup right after the exit; failure hands the container to the collector. When the
   * store cannot take the outcome, the whole step is tried again later (cleanup is idempotent),
   * so a container never stays `stopping` while the daemon runs.
   */
  async #cleanAfterExit(id: string): Promise<void> {
    try {
      await this.#cleanAfterExitOnce(id);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || this.#closed) throw error;
      this.#storeProblem = error.message;
      this.#log.warn("cleanup of {id} could not be recorded, retrying: {error}", {
        id,
        error: error.message,
      });
      await new Promise((resolve) => setTimeout(resolve, PENDING_RETRY_MS));
      if (!this.#closed) this.#track(this.#cleanAfterExit(id));
    }
  }

  async #cleanAfterExitOnce(id: string): Promise<void> {
    await this.#recordingDrained();
    await this.#acquireCleanSlot();
    try {
      const record = await this.#store.get(id);
      if (record === null || record.state !== "stopping") return;
      const outcome = await this.#cleaner.clean(record);
      this.#cleanups.inc({ result: outcome.ok ? "ok" : "failed" });
      if (outcome.ok) {
        await this.#store.markStopped(id);
        this.#storeWritable();
        this.#log.info("cleaned up {id}", { id, runtime: record.runtime });
        return;
      }
      this.#stepFailures.inc({ step: outcome.failedStep ?? "unknown" });
      this.#log.warn("cleanup of {id} failed at {step}, handing it to GC: {error}", {
        id,
        runtime: record.runtime,
        step: outcome.failedStep,
        error: outcome.error,
        procState: outcome.procState,
      });
      await this.#collector.enterFromExit(id, outcome);
    } finally {
      this.#releaseCleanSlot();
    }
  }

  #acquireCleanSlot(): Promise<void> {
    if (this.#cleaning < this.#config.gc.concurrency) {
      this.#cleaning++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#cleanQueue.push(resolve));
  }

  #releaseCleanSlot(): void {
    const next = this.#cleanQueue.shift();
    if (next !== undefined) next();
    else this.#cleaning--;
  }

  // --- ReaperApi -----------------------------------------------------------------------------

  createFifo(req: CreateFifoRequest): Promise<CreateFifoResponse> {
    this.#open();
    this.#checkStateDir(req.stateDir);
    try {
      return Promise.resolve({ fifo: this.#held.hold(req.stateDir) });
    } catch (error) {
      throw toApiError(error);
    }
  }

  async monitor(req: MonitorRequest): Promise<ContainerRecord> {
    this.#open();
    checkId(req.id);
    this.#checkRuntime(req.runtime);
    this.#checkStateDir(req.stateDir);
    if (!isValidPid(req.pid)) {
      throw new ApiError(400, `pid must be a positive integer, got ${req.pid}`);
    }
    if (req.ppid !== 0 && !isValidPid(req.ppid)) {
      throw new ApiError(400, `ppid must be 0 or a positive integer, got ${req.ppid}`);
    }
    const startTime = req.startTime ?? readProcStat(req.pid)?.startTime;
    if (startTime === undefined) {
      throw new ApiError(
        400,
        `pid ${req.pid} does not exist; give --start-time to monitor it anyway`,
      );
    }
    const pStartTime = req.ppid === 0 ? 0 : req.pStartTime ?? readProcStat(req.ppid)?.startTime;
    if (pStartTime === undefined) {
      throw new ApiError(
        400,
        `ppid ${req.ppid} does not exist; give --pstart-time to monitor it anyway`,
      );
    }
    checkIdentity("pid", req.pid, startTime, true);
    if (req.ppid !== 0) checkIdentity("ppid", req.ppid, pStartTime, true);
    const now = readProcStat(req.pid);
    const exited = now === null || now.startTime !== startTime || now.state === "Z";
    const memoryCgroup = this.#oom.markFor(req.pid, req.memoryCgroup, exited);
    if (memoryCgroup === null && req.memoryCgroup !== undefined) {
      throw new ApiError(
        400,
        `memoryCgroup ${req.memoryCgroup} is no memory cgroup with an oom_kill count`,
      );
    }
    let fifo: string;
    let fd: number;
    try {
      fifo = exitFifoName(req.stateDir);
      fd = this.#held.take(fifo) ?? this.#readEnds.open(fifo);
    } catch (error) {
      throw toApiError(error);
    }
    let record: ContainerRecord;
    let created: boolean;
    try {
      ({ record, created } = await this.#store.register({
        id: req.id,
        runtime: req.runtime,
        stateDir: req.stateDir.replace(/\/+$/, ""),
        pid: req.pid,
        startTime,
        ppid: req.ppid,
        pStartTime,
        name: req.name,
        mounts: req.mounts,
        paths: req.paths,
        memoryCgroup: memoryCgroup ?? undefined,
      }));
    } catch (error) {
      libc.close(fd);
      this.#readEnds.done(fifo);
      throw toApiError(error);
    }
    // Before the FIFO is watched: an exit already in it is decoded at once.
    this.#oom.watch(record);
    try {
      // A new record may replace one adopted with unknown identity, watched until now.
      if (created) this.#supervisor.remove(record.id);
      this.#watch(record, fifo, fd);
    } catch (error) {
      throw new ApiError(409, (error as Error).message);
    }
    this.#log.info("monitoring {id}", { id: record.id, runtime: record.runtime, pid: record.pid });
    return record;
  }

  async inspect(id: string): Promise<ContainerRecord> {
    checkId(id);
    const record = await this.#store.get(id);
    if (record === null) throw new ApiError(404, `no such container: ${id}`);
    return record;
  }

  list(page: ListPage = {}): Promise<ContainerRecord[]> {
    if (page.limit === undefined && page.after === undefined) return this.#store.list();
    return this.#store.listPage(page.after, page.limit ?? Infinity);
  }

  /** The supervisor's epoll loop, for the watchdog: poke it, then see it turned. */
  get exitLoop(): { readonly turns: number; poke(): void } {
    const supervisor = this.#supervisor;
    return {
      get turns() {
        return supervisor.loopTurns;
      },
      poke: () => supervisor.pokeLoop(),
    };
  }

  /** True while an exit is being written to the store (reads give way; see read_priority.ts). */
  get recordingExits(): boolean {
    return this.#recording > 0;
  }

  /** Resolves once no exit is being written (or after a bounded wait). */
  exitsRecorded(): Promise<void> {
    return this.#recordingDrained();
  }

  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ContainerRecord> {
    const first = await this.inspect(id);
    if (first.state !== "running") return first;
    await this.#untilEvent((e) => e.id === id && e.state !== "running", signal, timeoutMs);
    return await this.inspect(id);
  }

  /** Resolves at the first committed event that matches, or on abort or timeout. */
  #untilEvent(
    matches: (event: ReaperEvent) => boolean,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        unsubscribe();
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const unsubscribe = this.#store.subscribe((event) => {
        if (matches(event)) done();
      });
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done);
    });
  }

  async gcAdd(req: GcAddRequest): Promise<GcStatus> {
    this.#open();
    checkId(req.id);
    this.#checkRuntime(req.runtime);
    if (req.stateDir !== undefined) this.#checkStateDir(req.stateDir);
    // A container handed to GC may name a pid reused since (cleanup then signals nothing), so
    // only init is refused here.
    checkIdentity("pid", req.pid, undefined, false);
    checkIdentity("ppid", req.ppid, undefined, false);
    const startTime = req.startTime ??
      (isValidPid(req.pid) ? readProcStat(req.pid)?.startTime : undefined) ?? 0;
    const pStartTime = req.pStartTime ??
      (isValidPid(req.ppid) ? readProcStat(req.ppid)?.startTime : undefined) ?? 0;
    try {
      const view = await this.#collector.add({
        id: req.id,
        runtime: req.runtime,
        stateDir: (req.stateDir ?? `${this.#config.stateRoot}/${req.runtime}/${req.id}`)
          .replace(/\/+$/, ""),
        pid: req.pid,
        startTime,
        ppid: req.ppid,
        pStartTime,
        mounts: req.mounts,
        paths: req.paths,
        reason: "gc add",
      });
      // A container handed to GC is no longer watched for an exit.
      this.#supervisor.remove(req.id);
      this.#oom.forget(req.id);
      return view;
    } catch (error) {
      throw toApiError(error);
    }
  }

  gcList(): Promise<GcStatus[]> {
    return this.#store.listGcViews();
  }

  async remove(id: string): Promise<ContainerRecord> {
    this.#open();
    checkId(id);
    return await this.#store.forget(id).catch((error) => Promise.reject(toApiError(error)));
  }

  async gcRetry(id: string): Promise<GcStatus> {
    const view = await this.gcStatus(id);
    if (!this.#collector.retryNow(id)) throw new ApiError(409, `container ${id} is not scheduled`);
    return view;
  }

  async gcStatus(id: string): Promise<GcStatus> {
    checkId(id);
    const view = await this.#store.gcView(id);
    if (view === null) throw new ApiError(404, `container ${id} is not in GC`);
    return view;
  }

  events(since: number, limit: number): Promise<ReaperEvent[]> {
    return this.#store.eventsSince(since, limit);
  }

  waitForEvents(since: number, signal: AbortSignal): Promise<void> {
    if (this.#store.lastSeq > since || signal.aborted) return Promise.resolve();
    return this.#untilEvent((e) => e.seq > since, signal);
  }

  health(): Health {
    const reasons = this.#storeProblem === null ? [] : [`store: ${this.#storeProblem}`];
    reasons.push(...this.#storeProblemsAtStart.map((problem) => `store: ${problem}`));
    return {
      status: reasons.length === 0 ? "ok" : "degraded",
      reasons,
      monitored: this.#supervisor.size,
      held: this.#held.size,
      gc: this.#collector.stats().entries,
      pendingWrites: this.#pending.size,
      uptimeSeconds: Math.round((this.#now() - this.#startedAt) / 1000),
      version: VERSION,
    };
  }

  metrics(): string {
    return this.#metrics.render();
  }

  #open(): void {
    if (this.#closed) throw new ApiError(503, "reaperd is shutting down");
  }

  /** A state dir outside the state root could never be cleaned up: refuse it at the door. */
  #checkStateDir(stateDir: string): void {
    const problem = stateDirPathProblem(stateDir, this.#config.stateRoot) ??
      symlinkBelowRoot(stateDir, this.#config.stateRoot);
    if (problem !== null) throw new ApiError(400, problem);
  }

  #checkRuntime(runtime: string): void {
    if (!Object.hasOwn(this.#config.runtimes, runtime)) {
      const known = Object.keys(this.#config.runtimes).sort().join(", ") || "none";
      throw new ApiError(400, `unknown runtime ${JSON.stringify(runtime)} (configured: ${known})`);
    }
  }
}

/**
 * Why `stateDir` (already known to lie lexically inside `stateRoot`) cannot be used: a part of
 * it below the root that exists but is a symlink or not a directory. Creating the dir, its
 * FIFO, or opening the FIFO would otherwise go through the link to wherever it points, and
 * cleanup would then refuse to remove it forever. Null when every existing part is a real dir.
 */
function symlinkBelowRoot(stateDir: string, stateRoot: string): string | null {
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
function checkIdentity(field: string, pid: number, startTime: number | undefined, live: boolean) {
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

function checkId(id: string): void {
  const problem = idProblem(id);
  if (problem !== null) throw new ApiError(400, `id ${problem}`);
}

/** Maps the parts' errors to the status a client should see. */
function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ExitFifoError || error instanceof StoreInputError) {
    return new ApiError(400, error.message);
  }
  if (error instanceof NotFoundError) return new ApiError(404, error.message);
  if (error instanceof ConflictError) return new ApiError(409, error.message);
  if (error instanceof StoreUnavailableError) return new ApiError(503, error.message);
  if (error instanceof Error && error.name === "SysError") return new ApiError(400, error.message);
  return new ApiError(500, errorMessage(error));
}
