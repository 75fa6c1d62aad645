/**
 * The event log's entries: one type per kind, each with its own `detail` and the container
 * state it leaves behind, and one constructor per kind. The store builds every event here; the
 * socket API streams them as they are, and whoever reads the stream (the CLI, the benchmarks,
 * the tests) types them with {@linkcode ReaperEvent}.
 *
 * @module
 */

import type { ContainerRecord, ContainerState, ExitStatus, GcEntry, StepResult } from "../types.ts";

/** What every event has, whatever its kind: `detail` and `state` depend on `kind`. */
export interface EventOf<K extends string, S, D, I = string> {
  /** Position in the log, strictly increasing. */
  seq: number;
  /** What happened. */
  kind: K;
  /** The container it happened to; null for the daemon's own events. */
  id: I;
  /** When (ms since the epoch). */
  at: number;
  /** The container's state after the event. */
  state: S;
  /** What else there is to know about it. */
  detail: D;
}

/** The processes a container was registered or handed to GC with, and its runtime. */
export interface ProcessesDetail {
  /** The container's init process. */
  pid: number;
  /** Its start time (clock ticks since boot; 0 when unknown). */
  startTime: number;
  /** The shim; 0 for none. */
  ppid: number;
  /** The shim's start time. */
  pStartTime: number;
  /** The runtime name from the config. */
  runtime: string;
}

/** `monitor`: the container is recorded as running (again, when `replaced`). */
export type MonitorEvent = EventOf<"monitor", "running", MonitorDetail>;
/** Detail of a {@linkcode MonitorEvent}. */
export interface MonitorDetail extends ProcessesDetail {
  /** True when an earlier record of the same id was replaced. */
  replaced: boolean;
}

/** `exit`: the container's init process ended; cleanup follows. */
export type ExitEvent = EventOf<"exit", "stopping", ExitDetail>;
/** Detail of an {@linkcode ExitEvent}. */
export interface ExitDetail {
  /** The process the exit was seen for. */
  pid: number;
  /** Its start time. */
  startTime: number;
  /** How it ended. */
  exit: ExitStatus;
}

/**
 * `exit-lost`: the container's init process ended, but its record has no room for the exit
 * (its mounts or paths take the store's whole value limit): the exit is not recorded, and the
 * record stays `running`.
 */
export type ExitLostEvent = EventOf<"exit-lost", "running", ExitLostDetail>;
/** Detail of an {@linkcode ExitLostEvent}. */
export interface ExitLostDetail extends ExitDetail {
  /** Why the store refused it. */
  reason: string;
}

/** `stopped`: cleanup is done (or the container was marked stopped). */
export type StoppedEvent = EventOf<"stopped", "stopped", StoppedDetail>;
/** Detail of a {@linkcode StoppedEvent}. */
export interface StoppedDetail {
  /** The state it left. */
  from: ContainerState;
  /** Why. */
  reason: string;
}

/** What a GC entry says about its last attempt, and the steps of that attempt. */
export interface AttemptDetail extends Omit<GcEntry, "id" | "addedAt"> {
  /** Every step of the attempt with its result. */
  steps: StepResult[];
}

/** `gc`: the container entered GC, after a failed cleanup or handed over by `gc add`. */
export type GcEvent = EventOf<"gc", "gc", GcDetail>;
/** Detail of a {@linkcode GcEvent}: where it came from, its processes and its GC entry. */
export interface GcDetail extends ProcessesDetail, AttemptDetail {
  /** The state it was in before, null when it was unknown. */
  from: ContainerState | null;
  /** Why it entered GC. */
  reason: string;
}

/** `gc-attempt`: a GC attempt failed; another one is due at `detail.nextAttemptAt`. */
export type GcAttemptEvent = EventOf<"gc-attempt", "gc", AttemptDetail>;

/** `gc-done`: GC cleaned everything up; the container is stopped. */
export type GcDoneEvent = EventOf<"gc-done", "stopped", GcDoneDetail>;
/** Detail of a {@linkcode GcDoneEvent}. */
export interface GcDoneDetail {
  /** Failed attempts before the one that succeeded. */
  attempts: number;
  /** The successful attempt's steps. */
  steps: StepResult[];
}

/** `adopt`: found under the state root with no record, the container was adopted. */
export type AdoptEvent = EventOf<"adopt", ContainerState, AdoptDetail>;
/** Detail of an {@linkcode AdoptEvent}. */
export interface AdoptDetail {
  /** Why it was adopted. */
  reason: string;
  /** Where it was found. */
  stateDir: string;
}

/** `restore`: the daemon started and took up what its store holds. About no one container. */
export type RestoreEvent = EventOf<"restore", null, RestoreCounts, null>;
/** What the daemon found at start, the detail of a {@linkcode RestoreEvent}. */
export interface RestoreCounts {
  /** Running containers whose exit FIFO is watched again. */
  monitored: number;
  /** Running containers that exited while the daemon was down. */
  exited: number;
  /** Stopping containers whose cleanup was taken up again. */
  resumed: number;
  /** Containers found under the state root with no record, adopted (see `adopt` events). */
  adopted: number;
}

/** One entry of the append-only event log; `kind` tells which. */
export type ReaperEvent =
  | MonitorEvent
  | ExitEvent
  | ExitLostEvent
  | StoppedEvent
  | GcEvent
  | GcAttemptEvent
  | GcDoneEvent
  | RestoreEvent
  | AdoptEvent;

/** Kinds of entries in the event log. */
export type EventKind = ReaperEvent["kind"];

/** Every kind: a container's, in the order it meets them, then those of a daemon's start. */
export const EVENT_KINDS: readonly EventKind[] = [
  "monitor",
  "exit",
  "exit-lost",
  "stopped",
  "gc",
  "gc-attempt",
  "gc-done",
  "restore",
  "adopt",
];

/** `E` without its `seq`, for each member of a union on its own. */
export type Unsequenced<E> = E extends unknown ? Omit<E, "seq"> : never;

/** An event before the log gives it its `seq`. */
export type NewEvent = Unsequenced<ReaperEvent>;

/** An event about `record` as written: it happened when the record last changed. */
function about<K extends string, S, D>(
  record: ContainerRecord,
  kind: K,
  state: S,
  detail: D,
): Omit<EventOf<K, S, D>, "seq"> {
  return { kind, id: record.id, at: record.updatedAt, state, detail };
}

function processes(record: ContainerRecord): ProcessesDetail {
  const { pid, startTime, ppid, pStartTime, runtime } = record;
  return { pid, startTime, ppid, pStartTime, runtime };
}

/** What a GC entry contributes to its `gc` / `gc-attempt` event. */
function attempt(entry: GcEntry, steps: StepResult[]): AttemptDetail {
  const { id: _id, addedAt: _addedAt, ...last } = entry;
  return { ...last, steps };
}

/**
 * The `monitor` event of a record just registered.
 *
 * @param record The record as written (state `running`).
 * @param replaced Whether it replaced an earlier record of the same id.
 */
export function monitorEvent(
  record: ContainerRecord,
  replaced: boolean,
): Omit<MonitorEvent, "seq"> {
  return about(record, "monitor", "running", { ...processes(record), replaced });
}

/**
 * The `exit` event of a record whose exit was just recorded.
 *
 * @param record The record as written (state `stopping`).
 * @param exit Its exit, as written.
 */
export function exitEvent(record: ContainerRecord, exit: ExitStatus): Omit<ExitEvent, "seq"> {
  return about(record, "exit", "stopping", { pid: record.pid, startTime: record.startTime, exit });
}

/**
 * The `exit-lost` event of a running record that has no room for its exit.
 *
 * @param record The record, unchanged.
 * @param detail The exit, the process it was seen for, and why it was refused.
 * @param at When it was refused.
 */
export function exitLostEvent(
  record: ContainerRecord,
  detail: ExitLostDetail,
  at: number,
): Omit<ExitLostEvent, "seq"> {
  return { kind: "exit-lost", id: record.id, at, state: "running", detail };
}

/**
 * The `stopped` event of a record just marked stopped.
 *
 * @param record The record as written.
 * @param from The state it left.
 * @param reason Why.
 */
export function stoppedEvent(
  record: ContainerRecord,
  from: ContainerState,
  reason: string,
): Omit<StoppedEvent, "seq"> {
  return about(record, "stopped", "stopped", { from, reason });
}

/**
 * The `gc` event of a container that just entered GC.
 *
 * @param record The record as written (state `gc`).
 * @param entry Its new GC entry.
 * @param from The state it was in, null when it was unknown.
 * @param reason Why it entered GC.
 * @param steps The steps of the failed cleanup that sent it there, if any.
 */
export function gcEvent(
  record: ContainerRecord,
  entry: GcEntry,
  from: ContainerState | null,
  reason: string,
  steps: StepResult[],
): Omit<GcEvent, "seq"> {
  return about(record, "gc", "gc", {
    from,
    reason,
    ...processes(record),
    ...attempt(entry, steps),
  });
}

/**
 * The `gc-attempt` event of a failed GC attempt.
 *
 * @param entry The GC entry as written.
 * @param steps The attempt's steps.
 * @param at When it was recorded.
 */
export function gcAttemptEvent(
  entry: GcEntry,
  steps: StepResult[],
  at: number,
): Omit<GcAttemptEvent, "seq"> {
  return { kind: "gc-attempt", id: entry.id, at, state: "gc", detail: attempt(entry, steps) };
}

/**
 * The `gc-done` event of a container GC cleaned up.
 *
 * @param record The record as written (state `stopped`).
 * @param attempts Failed attempts before this one.
 * @param steps The successful attempt's steps.
 */
export function gcDoneEvent(
  record: ContainerRecord,
  attempts: number,
  steps: StepResult[],
): Omit<GcDoneEvent, "seq"> {
  return about(record, "gc-done", "stopped", { attempts, steps });
}

/**
 * The `restore` event of a daemon that just took up its store.
 *
 * @param counts What it found.
 * @param at When.
 */
export function restoreEvent(counts: RestoreCounts, at: number): Omit<RestoreEvent, "seq"> {
  const { monitored, exited, resumed, adopted } = counts;
  return {
    kind: "restore",
    id: null,
    at,
    state: null,
    detail: { monitored, exited, resumed, adopted },
  };
}

/**
 * The `adopt` event of a container found under the state root with no record.
 *
 * @param record Its record, as adopted.
 * @param reason Why it was adopted.
 * @param at When.
 */
export function adoptEvent(
  record: ContainerRecord,
  reason: string,
  at: number,
): Omit<AdoptEvent, "seq"> {
  const detail = { reason, stateDir: record.stateDir };
  return { kind: "adopt", id: record.id, at, state: record.state, detail };
}

/**
 * A type guard for events of one kind, for `filter` and `find`.
 *
 * @example
 * ```ts ignore
 * const tries = events.filter(isEvent("gc-attempt")).map((e) => e.detail.attempts);
 * ```
 */
export function isEvent<K extends EventKind>(
  kind: K,
): (event: ReaperEvent) => event is Extract<ReaperEvent, { kind: K }> {
  return (event): event is Extract<ReaperEvent, { kind: K }> => event.kind === kind;
}
