/**
 * The operations the daemon offers, in one interface: the HTTP routes on the unix socket call
 * these and nothing else, and the library API (`src/mod.ts`) exposes the same shapes.
 *
 * @module
 */

import type { ReaperEvent } from "../store/events.ts";
import type { ContainerRecord, GcEntry } from "../types.ts";

/** `reaperd create-fifo <stateDir>`: create the dir and FIFO, hold its read end. */
export interface CreateFifoRequest {
  /** Absolute path of the container's state dir. */
  stateDir: string;
}

/** The FIFO that was created (or reused) and whose read end the daemon now holds. */
export interface CreateFifoResponse {
  fifo: string;
}

/** `reaperd monitor`: arm the held read end (or open it now) and record the container. */
export interface MonitorRequest {
  id: string;
  runtime: string;
  stateDir: string;
  pid: number;
  ppid: number;
  name?: string;
  /** Read from /proc by the daemon when absent. */
  startTime?: number;
  /** Read from /proc by the daemon when absent. */
  pStartTime?: number;
  /** Mount points cleanup must unmount. */
  mounts?: string[];
  /** Other paths cleanup must remove. */
  paths?: string[];
  /**
   * The container's memory cgroup directory, to tell an OOM kill at its exit; found from
   * `/proc/<pid>/cgroup` when absent.
   */
  memoryCgroup?: string;
  /**
   * Create the state dir and its FIFO when no read end is held for it (create-fifo was not
   * called), and hold the read end from now on: one call per container for an engine that
   * starts the shim only after monitor. A shim already started could not have opened a FIFO
   * that did not exist yet, so without this field a missing FIFO stays an error.
   */
  createFifo?: boolean;
}

/** `reaperd gc add`: hand a container to the collector directly (seed `gc_add_container`). */
export interface GcAddRequest {
  id: string;
  runtime: string;
  pid: number;
  ppid: number;
  startTime?: number;
  pStartTime?: number;
  /** Defaults to `<stateRoot>/<runtime>/<id>`. */
  stateDir?: string;
  mounts?: string[];
  paths?: string[];
}

/** A page of `GET /v1/containers`: records in id order. */
export interface ListPage {
  /** Only records whose id sorts after this one. */
  after?: string;
  /** At most this many records. */
  limit?: number;
}

/** A container in GC: its record and its GC entry. */
export interface GcStatus {
  record: ContainerRecord;
  entry: GcEntry;
}

/** What `GET /v1/health` reports. */
export interface Health {
  /** "ok", or "degraded" when exits wait in memory because the store cannot be written. */
  status: "ok" | "degraded";
  /** Why it is degraded; empty when ok. */
  reasons: string[];
  /** Containers whose exit FIFO is being watched. */
  monitored: number;
  /** Read ends held by create-fifo but not armed yet. */
  held: number;
  /** Containers in GC. */
  gc: number;
  /** Exits decoded but not yet written to the store. */
  pendingWrites: number;
  /** Seconds since the daemon started. */
  uptimeSeconds: number;
  /** reaperd version. */
  version: string;
}

/** The daemon's operations. Every method validates its input and throws an ApiError. */
export interface ReaperApi {
  createFifo(req: CreateFifoRequest): Promise<CreateFifoResponse>;
  monitor(req: MonitorRequest): Promise<ContainerRecord>;
  inspect(id: string): Promise<ContainerRecord>;
  /** Records in id order: all of them, or one page. */
  list(page?: ListPage): Promise<ContainerRecord[]>;
  /**
   * Forgets a stopped container's record now (`reaperd rm`), rather than when retention would.
   * Throws ApiError 404 for an unknown id, 409 while it runs, stops or is in GC.
   */
  remove(id: string): Promise<ContainerRecord>;
  /**
   * Resolves once the exit is recorded (state is no longer `running`), or with the record as
   * it is when `timeoutMs` passes. Aborts with the signal.
   */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ContainerRecord>;
  /**
   * Hands a container to GC; idempotent per id. Throws ApiError 409 for one running with a
   * known process (its exit is still to come); one stopping is answered with its GC status.
   */
  gcAdd(req: GcAddRequest): Promise<GcStatus>;
  gcList(): Promise<GcStatus[]>;
  /** Throws ApiError 404 when the container is not in GC. */
  gcStatus(id: string): Promise<GcStatus>;
  /** Makes the next GC attempt due now (`reaperd gc retry`); ApiError 404 when not in GC. */
  gcRetry(id: string): Promise<GcStatus>;
  /** Events after `since` (exclusive), oldest first, at most `limit`. */
  events(since: number, limit: number): Promise<ReaperEvent[]>;
  /** Resolves when an event after `since` exists (or the signal aborts). */
  waitForEvents(since: number, signal: AbortSignal): Promise<void>;
  health(): Health;
  /** Prometheus text exposition format. */
  metrics(): string;
}

/** An error with the HTTP status it maps to and a one-line reason. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}
