/**
 * An in-memory {@linkcode ReaperApi} for the HTTP layer's own tests (sockets, long polls,
 * streams, bad requests): records, GC entries and events in maps, exits triggered by the test.
 * What reaperd answers is tested against the real daemon (tests/); events here come from the
 * store's own constructors, so their shapes cannot drift from the daemon's.
 *
 * @module
 */

import {
  exitEvent,
  gcEvent,
  monitorEvent,
  type NewEvent,
  type ReaperEvent,
} from "../store/events.ts";
import type { ContainerRecord, ExitStatus } from "../types.ts";
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

/** A ReaperApi that keeps everything in memory; `exit()` plays the shim. */
export class FakeApi implements ReaperApi {
  readonly records = new Map<string, ContainerRecord>();
  readonly gc = new Map<string, GcStatus>();
  readonly log: ReaperEvent[] = [];
  readonly runtimes = new Set(["runc", "crun"]);
  /** Methods that throw a plain Error (a bug, for the 500 path). */
  readonly broken = new Set<string>();
  /** How many waitForEvents calls are pending right now. */
  pendingEventWaits = 0;
  /** How many wait calls are pending right now. */
  pendingWaits = 0;
  #listeners = new Set<() => void>();

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => {
      const l = () => {
        this.#listeners.delete(l);
        resolve();
      };
      this.#listeners.add(l);
    });
  }

  #check(method: string): void {
    if (this.broken.has(method)) throw new Error(`${method} exploded\nwith a second line`);
  }

  #event(event: NewEvent): void {
    this.log.push({ seq: this.log.length + 1, ...event } as ReaperEvent);
    this.#notify();
  }

  #get(id: string): ContainerRecord {
    const r = this.records.get(id);
    if (r === undefined) throw new ApiError(404, `no such container: ${id}`);
    return r;
  }

  createFifo(req: CreateFifoRequest): Promise<CreateFifoResponse> {
    this.#check("createFifo");
    return Promise.resolve({ fifo: `${req.stateDir}/exit_fifo` });
  }

  monitor(req: MonitorRequest): Promise<ContainerRecord> {
    this.#check("monitor");
    if (!this.runtimes.has(req.runtime)) {
      return Promise.reject(new ApiError(400, `unknown runtime ${req.runtime}`));
    }
    const now = Date.now();
    const record: ContainerRecord = {
      id: req.id,
      name: req.name ?? req.id,
      runtime: req.runtime,
      stateDir: req.stateDir,
      pid: req.pid,
      startTime: req.startTime ?? 1000,
      ppid: req.ppid,
      pStartTime: req.pStartTime ?? 999,
      mounts: req.mounts ?? [],
      paths: req.paths ?? [],
      state: "running",
      exit: null,
      createdAt: now,
      updatedAt: now,
    };
    this.records.set(req.id, record);
    this.#event(monitorEvent(record, false));
    return Promise.resolve(record);
  }

  /** Records an exit (running → stopping), as the daemon does when the shim writes it. */
  exit(id: string, code: number | null): void {
    const record = this.#get(id);
    const exit: ExitStatus = {
      code,
      signal: code !== null && code > 128 ? code - 128 : null,
      known: code !== null,
      reason: code === null ? "the shim died without writing a status" : `exited with ${code}`,
      at: Date.now(),
    };
    record.exit = exit;
    record.state = "stopping";
    record.updatedAt = Date.now();
    this.#event(exitEvent(record, exit));
  }

  inspect(id: string): Promise<ContainerRecord> {
    this.#check("inspect");
    return Promise.resolve(this.#get(id));
  }

  list(page: ListPage = {}): Promise<ContainerRecord[]> {
    try {
      this.#check("list");
    } catch (e) {
      return Promise.reject(e);
    }
    const sorted = [...this.records.values()].sort((a, b) => a.id < b.id ? -1 : 1);
    const from = page.after === undefined ? sorted : sorted.filter((r) => r.id > page.after!);
    return Promise.resolve(from.slice(0, page.limit ?? from.length));
  }

  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ContainerRecord> {
    const record = this.#get(id);
    if (record.exit !== null) return record;
    this.pendingWaits++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        (async () => {
          while (record.exit === null) await this.#changed();
        })(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
        // Like the daemon: an aborted wait resolves with the record as it is.
        new Promise<void>((resolve) => {
          onAbort = resolve;
          if (signal?.aborted) onAbort();
          signal?.addEventListener("abort", onAbort);
        }),
      ]);
      return record;
    } finally {
      this.pendingWaits--;
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      // Release the pending #changed() waiter so no promise is left behind.
      this.#notify();
    }
  }

  gcAdd(req: GcAddRequest): Promise<GcStatus> {
    this.#check("gcAdd");
    const now = Date.now();
    const record: ContainerRecord = this.records.get(req.id) ?? {
      id: req.id,
      name: req.id,
      runtime: req.runtime,
      stateDir: req.stateDir ?? `/var/run/isulad/${req.runtime}/${req.id}`,
      pid: req.pid,
      startTime: req.startTime ?? 0,
      ppid: req.ppid,
      pStartTime: req.pStartTime ?? 0,
      mounts: req.mounts ?? [],
      paths: req.paths ?? [],
      state: "gc",
      exit: null,
      createdAt: now,
      updatedAt: now,
    };
    record.state = "gc";
    this.records.set(req.id, record);
    const status: GcStatus = {
      record,
      entry: {
        id: req.id,
        addedAt: now,
        attempts: 0,
        nextAttemptAt: now,
        lastStep: null,
        lastError: null,
        stderrTail: "",
        procState: null,
      },
    };
    this.gc.set(req.id, status);
    this.#event(gcEvent(record, status.entry, null, "gc add", []));
    return Promise.resolve(status);
  }

  remove(id: string): Promise<ContainerRecord> {
    const record = this.#get(id);
    if (record.state !== "stopped") {
      return Promise.reject(new ApiError(409, `container ${id} is ${record.state}`));
    }
    this.records.delete(id);
    return Promise.resolve(record);
  }

  gcRetry(id: string): Promise<GcStatus> {
    return this.gcStatus(id);
  }

  gcList(): Promise<GcStatus[]> {
    return Promise.resolve([...this.gc.values()]);
  }

  gcStatus(id: string): Promise<GcStatus> {
    const s = this.gc.get(id);
    if (s === undefined) return Promise.reject(new ApiError(404, `container ${id} is not in GC`));
    return Promise.resolve(s);
  }

  events(since: number, limit: number): Promise<ReaperEvent[]> {
    return Promise.resolve(this.log.filter((e) => e.seq > since).slice(0, limit));
  }

  async waitForEvents(since: number, signal: AbortSignal): Promise<void> {
    this.pendingEventWaits++;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        (async () => {
          while (this.log.length === 0 || this.log[this.log.length - 1]!.seq <= since) {
            await this.#changed();
          }
        })(),
        new Promise<void>((resolve) => {
          onAbort = resolve;
          if (signal.aborted) onAbort();
          signal.addEventListener("abort", onAbort);
        }),
      ]);
    } finally {
      this.pendingEventWaits--;
      if (onAbort) signal.removeEventListener("abort", onAbort);
      this.#notify();
    }
  }

  health(): Health {
    return {
      status: "ok",
      reasons: [],
      monitored: [...this.records.values()].filter((r) => r.state === "running").length,
      held: 0,
      gc: this.gc.size,
      pendingWrites: 0,
      uptimeSeconds: 1,
      version: "test",
    };
  }

  metrics(): string {
    return "# TYPE reaperd_monitored_containers gauge\nreaperd_monitored_containers 0";
  }
}
