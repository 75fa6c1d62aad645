/**
 * Exits first: the socket API's reads (`ps`, `inspect`, `gc ls`, `gc status`) give way to the
 * exit path. Hundreds of clients reading as fast as they can otherwise fill the store's queue,
 * and an exit's commit waits behind every read queued before it (seconds, under 500 readers).
 *
 * - At most `maxConcurrent` reads are at the store at once; the others wait in a queue here,
 *   where they cost nothing to the exit path.
 * - No read starts while an exit is being recorded: the server starts no request then (see
 *   `http.ts`), so a read, even one answered from the snapshot below, waits once, at its
 *   request's turn.
 * - `ps` is answered from one shared snapshot of every record while nothing has changed in the
 *   store: the event log's last seq is the same, no call that may change a record (`rm` writes
 *   no event) has finished since, and the snapshot is younger than `snapshotMaxAgeMs` (for
 *   what retention deletes on its own). Pages and `inspect` are cut from the
 *   same snapshot when it is current. Clients reading the same thing share one store read.
 *
 * Event streams and long polls take no store-read turn: they are how an exit is announced.
 *
 * @module
 */

import type { ContainerRecord } from "../types.ts";
import type { ListPage, ReaperApi } from "./api.ts";
import { Turnstile } from "./turnstile.ts";

/** Options of {@linkcode prioritizeReads}. */
export interface ReadPriorityOptions {
  /** Store reads in flight at once at most (default 2). */
  maxConcurrent?: number;
  /** Changes whenever a record may have changed (the event log's last seq). */
  version: () => number;
  /** Oldest a snapshot may be and still be served, in ms (default 1000). */
  snapshotMaxAgeMs?: number;
  /** Clock for the snapshot's age (default `performance.now`). */
  now?: () => number;
}

/** API calls that change nothing in the store. */
const READ_ONLY: ReadonlySet<string> = new Set([
  "inspect",
  "list",
  "wait",
  "gcList",
  "gcStatus",
  "events",
  "waitForEvents",
  "health",
  "metrics",
]);

interface Snapshot {
  version: number;
  epoch: number;
  takenAt: number;
  records: ContainerRecord[];
  byId: Map<string, number>;
}

/** A store read for a snapshot, shared by the callers that may join it. */
interface SnapshotRead {
  /** The version and epoch it started at; null while it still waits for its turn. */
  from: { version: number; epoch: number } | null;
  snapshot: Promise<Snapshot>;
}

/**
 * Wraps `api` so that its reads follow the rules in the module doc; every other call goes
 * straight through.
 */
export function prioritizeReads(api: ReaperApi, options: ReadPriorityOptions): ReaperApi {
  const gate = new Turnstile(options.maxConcurrent ?? 2);
  const maxAge = options.snapshotMaxAgeMs ?? 1000;
  const now = options.now ?? (() => performance.now());
  let snapshot: Snapshot | null = null;
  /** The store read under way, if any. */
  let taking: SnapshotRead | null = null;
  /** Moves on each change made through the API (some, like `rm`, write no event). */
  let epoch = 0;

  const current = (): Snapshot | null =>
    snapshot !== null && snapshot.version === options.version() && snapshot.epoch === epoch &&
      now() - snapshot.takenAt <= maxAge
      ? snapshot
      : null;

  /** True when nothing has changed since `from`: a read begun then is as good as a new one. */
  const unchanged = (from: SnapshotRead["from"]) =>
    from === null || (from.version === options.version() && from.epoch === epoch);

  const take = (): Promise<Snapshot> => {
    const fresh = current();
    if (fresh !== null) return Promise.resolve(fresh);
    // A read begun before a change the caller may have seen finished would miss that change.
    if (taking !== null && unchanged(taking.from)) return taking.snapshot;
    const read = { from: null } as SnapshotRead;
    read.snapshot = gate.run(async () => {
      // The version is read before the records: a change during the read makes it stale.
      const from = read.from = { version: options.version(), epoch };
      const takenAt = now();
      const records = await api.list();
      const byId = new Map(records.map((r, i) => [r.id, i]));
      return { ...from, takenAt, records, byId };
    }).then((s) => {
      // A read that began earlier and ended later does not replace a newer snapshot.
      if (snapshot === null || snapshot.takenAt <= s.takenAt) snapshot = s;
      return s;
    }).finally(() => {
      if (taking === read) taking = null;
    });
    taking = read;
    return read.snapshot;
  };

  const page = (s: Snapshot, p: ListPage): ContainerRecord[] => {
    let from = 0;
    if (p.after !== undefined) {
      const at = s.byId.get(p.after);
      from = at !== undefined ? at + 1 : firstAfter(s.records, p.after);
    }
    return s.records.slice(from, p.limit === undefined ? undefined : from + p.limit);
  };

  const overrides: Partial<ReaperApi> = {
    async list(p: ListPage = {}): Promise<ContainerRecord[]> {
      const s = await take();
      // The whole list is the snapshot itself: the router serializes it once for everyone.
      return p.after === undefined && p.limit === undefined ? s.records : page(s, p);
    },
    async inspect(id: string): Promise<ContainerRecord> {
      const s = current();
      const at = s?.byId.get(id);
      if (s !== null && at !== undefined) return s.records[at]!;
      return await gate.run(() => api.inspect(id));
    },
    gcList: () => gate.run(() => api.gcList()),
    gcStatus: (id: string) => gate.run(() => api.gcStatus(id)),
  };
  // Everything else is the API's own, called on the API itself; a call that may change a
  // record makes the snapshot stale when it is done, whether or not it wrote an event.
  const wrapped = new Proxy(api, {
    get(target, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof ReaperApi];
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (typeof prop === "string" && READ_ONLY.has(prop)) return value.bind(target);
      return (...args: unknown[]) => {
        const stale = () => epoch++;
        const result = value.apply(target, args);
        if (result instanceof Promise) return result.finally(stale);
        stale();
        return result;
      };
    },
  });
  return wrapped;
}

/** Index of the first record whose id sorts after `id` (records are in id order). */
function firstAfter(records: readonly ContainerRecord[], id: string): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
