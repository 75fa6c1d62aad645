/**
 * The daemon's front door: it implements {@linkcode ReaperApi} (what the socket serves),
 * admitting requests and answering them. The parts it wires do the work: the supervisor
 * watches FIFOs, the exit path records exits and hands them to the collector, which owns every
 * cleanup attempt; metrics and GC logs are fed by their events. See docs/architecture.md.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { ConflictError } from "../store/errors.ts";
import type { Store } from "../store/store.ts";
import { createExitFifo, exitFifoName } from "../supervisor/exit_fifo.ts";
import * as libc from "../sys/libc.ts";
import type { ReaperEvent, RestoreCounts } from "../store/events.ts";
import type { ContainerRecord } from "../types.ts";
import { Admission, checkNotBeingCleaned } from "./admission.ts";
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
import { restoreAll, watchRecord } from "./restore.ts";
import { toApiError } from "./to_api_error.ts";
import { untilEvent } from "./until_event.ts";
import { type ExitLoop, type Parts, type PartsInput, wireParts } from "./wiring.ts";
import { VERSION } from "../version.ts";

export { VERSION };

/** What the service is made of: config, store, cleaner, loggers, and a clock for tests. */
export type ServiceParts = Omit<PartsInput, "now"> & { now?: () => number };

/** The daemon's service. Create it, `restore()` it, serve it, `close()` it. */
export class ReaperService implements ReaperApi {
  readonly #config: Config;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #parts: Parts & PartsInput;
  readonly #admission: Admission;
  #closed = false;

  constructor(parts: ServiceParts) {
    const input = { ...parts, now: parts.now ?? Date.now };
    ({ config: this.#config, store: this.#store, log: this.#log, now: this.#now } = input);
    this.#startedAt = this.#now();
    this.#parts = { ...input, ...wireParts(input, VERSION) };
    this.#admission = new Admission(this.#config);
  }

  /** Start-up in the seed's order (see {@linkcode restoreAll}); resolves to what it took up. */
  restore(): Promise<Record<keyof RestoreCounts, number>> {
    return restoreAll(this.#parts);
  }

  /**
   * Stops watching, writes the exits held in memory (bounded by `graceMs`; each one it could
   * not write is logged), then waits (bounded) for cleanups in flight. The store stays open.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.#closed = true;
    this.#parts.held.closeAll();
    this.#parts.readEnds.close();
    await this.#parts.supervisor.stop();
    await this.#parts.exitPath.close(graceMs);
    await this.#parts.collector.stop();
  }

  createFifo(req: CreateFifoRequest): Promise<CreateFifoResponse> {
    this.#open();
    this.#admission.fifoDir(req.stateDir);
    checkNotBeingCleaned(this.#parts.collector, req.stateDir);
    try {
      return Promise.resolve({ fifo: this.#parts.held.hold(req.stateDir) });
    } catch (error) {
      throw toApiError(error);
    }
  }

  async monitor(req: MonitorRequest): Promise<ContainerRecord> {
    this.#open();
    const { held, oom, readEnds, supervisor } = this.#parts;
    let fifo: string;
    try {
      fifo = exitFifoName(req.stateDir);
    } catch (error) {
      throw toApiError(error);
    }
    // A FIFO created by this request is empty: only a read end held before tells of an exit.
    const heldBefore = held.has(fifo);
    const { startTime, pStartTime, exited } = this.#admission.monitor(req, heldBefore);
    checkNotBeingCleaned(this.#parts.collector, req.stateDir);
    const memoryCgroup = oom.markFor(req.pid, req.memoryCgroup, exited);
    if (memoryCgroup === null && req.memoryCgroup !== undefined) {
      throw new ApiError(
        400,
        `memoryCgroup ${req.memoryCgroup} is no memory cgroup with an oom_kill count`,
      );
    }
    let fd: number;
    try {
      if (!heldBefore && req.createFifo === true) createExitFifo(req.stateDir);
      fd = held.take(fifo) ?? readEnds.open(fifo);
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
      readEnds.done(fifo);
      throw toApiError(error);
    }
    // Before the FIFO is watched: an exit already in it is decoded at once.
    oom.watch(record);
    try {
      // A new record may replace one adopted with unknown identity, watched until now.
      if (created) supervisor.remove(record.id);
      watchRecord(supervisor, record, fifo, fd);
    } catch (error) {
      throw new ApiError(409, (error as Error).message);
    }
    this.#log.info("monitoring {id}", { id: record.id, runtime: record.runtime, pid: record.pid });
    return record;
  }

  async inspect(id: string): Promise<ContainerRecord> {
    this.#admission.id(id);
    const record = await this.#store.get(id);
    if (record === null) throw new ApiError(404, `no such container: ${id}`);
    return record;
  }

  list(page: ListPage = {}): Promise<ContainerRecord[]> {
    if (page.limit === undefined && page.after === undefined) return this.#store.list();
    return this.#store.listPage(page.after, page.limit ?? Infinity);
  }

  /** The supervisor's epoll loop, for the watchdog: poke it, then see it turned. */
  get exitLoop(): ExitLoop {
    return this.#parts.exitLoop;
  }

  /** True while an exit is being written to the store (requests give way; see http.ts). */
  get recordingExits(): boolean {
    return this.#parts.exitPath.recording;
  }

  /** Resolves once no exit is being written (or after a bounded wait). */
  exitsRecorded(): Promise<void> {
    return this.#parts.exitPath.drained();
  }

  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ContainerRecord> {
    // Listening before the read: an exit committed between the two is not missed.
    const done = new AbortController();
    const signals = signal === undefined ? [done.signal] : [done.signal, signal];
    const ended = untilEvent(
      this.#store,
      (e) => e.id === id && e.state !== "running",
      AbortSignal.any(signals),
      timeoutMs,
    );
    try {
      const first = await this.inspect(id);
      if (first.state !== "running") return first;
      await ended;
      return await this.inspect(id);
    } finally {
      done.abort();
    }
  }

  /**
   * `gc add`: hands a container to the collector. One reaperd follows is not taken from it: a
   * running one whose process is known is refused (409), as its cleanup would kill it and its
   * exit would be lost; one stopping, its first cleanup under way, is answered with its GC
   * status. An engine that retries a `gc add` after a container died wants to hear that it is
   * being cleaned, not an error to retry forever, and a second cleanup with other processes
   * would only race the first.
   */
  async gcAdd(req: GcAddRequest): Promise<GcStatus> {
    this.#open();
    const { stateDir, startTime, pStartTime } = this.#admission.gcAdd(req);
    // Twice at most: a first cleanup that ends between the refusal and the status read leaves
    // the container stopped, which may be handed to GC again.
    for (let attempt = 1;; attempt++) {
      try {
        const { record, entry } = await this.#parts.collector.add({
          id: req.id,
          runtime: req.runtime,
          stateDir,
          pid: req.pid,
          startTime,
          ppid: req.ppid,
          pStartTime,
          mounts: req.mounts,
          paths: req.paths,
          reason: "gc add",
        });
        // One running with its identity unknown (adopted) is cleaned now, by the processes
        // named: nothing is left to watch for.
        this.#parts.supervisor.remove(req.id);
        this.#parts.oom.forget(req.id);
        return { record, entry };
      } catch (error) {
        if (!(error instanceof ConflictError)) throw toApiError(error);
        if (error.state === "running") throw runningRefusal(req.id);
        const view = await this.#parts.collector.status(req.id);
        if (view !== null) return view;
        if (attempt === 2) throw toApiError(error);
      }
    }
  }

  gcList(): Promise<GcStatus[]> {
    return this.#parts.collector.list();
  }

  async remove(id: string): Promise<ContainerRecord> {
    this.#open();
    this.#admission.id(id);
    return await this.#store.forget(id).catch((error) => Promise.reject(toApiError(error)));
  }

  async gcRetry(id: string): Promise<GcStatus> {
    const view = await this.gcStatus(id);
    if (this.#parts.collector.retryNow(id)) return view;
    throw new ApiError(409, `container ${id} is not scheduled`);
  }

  async gcStatus(id: string): Promise<GcStatus> {
    this.#admission.id(id);
    const view = await this.#parts.collector.status(id);
    if (view === null) throw new ApiError(404, `container ${id} is not in GC`);
    return view;
  }

  events(since: number, limit: number): Promise<ReaperEvent[]> {
    return this.#store.eventsSince(since, limit);
  }

  waitForEvents(since: number, signal: AbortSignal): Promise<void> {
    if (this.#store.lastSeq > since || signal.aborted) return Promise.resolve();
    return untilEvent(this.#store, (e) => e.seq > since, signal);
  }

  /** FIFO read ends the daemon holds now: watched containers and create-fifo's held ends. */
  get fifoReadEnds(): number {
    return this.#parts.supervisor.size + this.#parts.held.size;
  }

  health(): Health {
    const reasons = this.#parts.problems();
    return {
      status: reasons.length === 0 ? "ok" : "degraded",
      reasons,
      monitored: this.#parts.supervisor.size,
      held: this.#parts.held.size,
      gc: this.#parts.collector.stats().entries,
      pendingWrites: this.#parts.exitPath.held,
      uptimeSeconds: Math.round((this.#now() - this.#startedAt) / 1000),
      version: VERSION,
    };
  }

  metrics(): string {
    return this.#parts.metrics.render();
  }

  #open(): void {
    if (this.#closed) throw new ApiError(503, "reaperd is shutting down");
  }
}

/** The 409 for `gc add` of a container that runs and is monitored: what to do instead. */
function runningRefusal(id: string): ApiError {
  return new ApiError(
    409,
    `container ${id} is running and monitored by reaperd: gc add would kill it and lose its ` +
      `exit; stop it with its runtime instead, and its exit is recorded and it is cleaned up ` +
      `by itself (reaperd wait ${id}, then reaperd gc status ${id})`,
  );
}
