/**
 * Helpers for tests that need a real KV file on disk: a temp dir removed afterwards, and a
 * `Deno.Kv` wrapper whose commits can be made to fail or race on demand.
 *
 * @module
 */

import type { ExitStatus } from "../types.ts";
import type { RegisterInput, Store } from "./store.ts";

/**
 * Runs `fn` with the path of a fresh KV file in a new temp dir, and removes the dir after,
 * whatever happens. `fn` opens (and must close) the KV itself, so it can reopen the file.
 */
export async function withKvPath(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-store-" });
  try {
    await fn(`${dir}/reaperd.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens the KV file at `path`, runs `fn`, and closes it even when `fn` throws. */
export async function withKv<T>(path: string, fn: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const kv = await Deno.openKv(path);
  try {
    return await fn(kv);
  } finally {
    kv.close();
  }
}

/**
 * A `Deno.Kv` that behaves like `kv`, except that each `atomic().commit()` first runs
 * `beforeCommit`, which may throw (a failed write) or write through `kv` (a racing writer).
 */
export function interceptCommits(
  kv: Deno.Kv,
  beforeCommit: () => Promise<void>,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          return new Proxy(op, {
            get(opTarget, opProp) {
              if (opProp === "commit") {
                return async () => {
                  await beforeCommit();
                  return await opTarget.commit();
                };
              }
              const value = Reflect.get(opTarget, opProp, opTarget);
              return typeof value === "function" ? value.bind(opTarget) : value;
            },
          });
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A `Deno.Kv` like `kv` whose next commit is preceded by the writer given to `race`: what
 * another process writing between a read and its commit looks like.
 */
export function racingKv(kv: Deno.Kv): { kv: Deno.Kv; race: (fn: () => Promise<void>) => void } {
  let racer: (() => Promise<void>) | null = null;
  const racy = interceptCommits(kv, async () => {
    const run = racer;
    racer = null;
    await run?.();
  });
  return { kv: racy, race: (fn) => (racer = fn) };
}

/** A registration for container `id` with pid `pid` (start time pid × 10). */
export function registration(id: string, pid = 100): RegisterInput {
  return {
    id,
    runtime: "runc",
    stateDir: `/run/test/runc/${id}`,
    pid,
    startTime: pid * 10,
    ppid: pid - 1,
    pStartTime: (pid - 1) * 10,
  };
}

/** A known exit with `code`. */
export function exitWith(code: number, at = 1_000): ExitStatus {
  return { code, signal: null, known: true, reason: `exited with code ${code}`, at };
}

/** Registers `id` (pid 100, start time 1000), records its exit and marks it stopped. */
export async function runToStopped(store: Store, id: string): Promise<void> {
  await store.register(registration(id));
  await store.recordExit(id, 100, 1000, exitWith(0));
  await store.markStopped(id);
}

/** What a {@linkcode countingReads} wrapper has read so far. */
export interface ReadCount {
  /** `list` calls made. */
  lists: number;
  /** `get` and `getMany` calls made, whether or not they found anything. */
  lookups: number;
  /** Entries read, by `list`, `get` and `getMany` (absent keys not counted). */
  entries: number;
  /** Entries read whose key starts with `prefix`, by prefix. */
  byPrefix: Map<string, number>;
}

/**
 * A `Deno.Kv` like `kv` that counts its `list`, `get` and `getMany` calls and the entries it reads, by the first
 * part of their keys: what a scan costs, told apart from what a lookup costs.
 */
export function countingReads(kv: Deno.Kv): { kv: Deno.Kv; count: ReadCount; reset: () => void } {
  const count: ReadCount = { lists: 0, lookups: 0, entries: 0, byPrefix: new Map() };
  const saw = (entry: Deno.KvEntryMaybe<unknown>) => {
    if (entry.versionstamp === null) return;
    count.entries++;
    const prefix = String(entry.key[0]);
    count.byPrefix.set(prefix, (count.byPrefix.get(prefix) ?? 0) + 1);
  };
  const counted = new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          count.lists++;
          const iter = target.list(selector, options);
          return (async function* () {
            for await (const entry of iter) {
              saw(entry);
              yield entry;
            }
          })();
        };
      }
      if (prop === "get") {
        return async (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) => {
          count.lookups++;
          const entry = await target.get(key, options);
          saw(entry);
          return entry;
        };
      }
      if (prop === "getMany") {
        return async (
          keys: Deno.KvKey[],
          options?: { consistency?: Deno.KvConsistencyLevel },
        ) => {
          count.lookups++;
          const entries = await target.getMany(keys, options);
          entries.forEach(saw);
          return entries;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    kv: counted,
    count,
    reset: () => {
      count.lists = 0;
      count.lookups = 0;
      count.entries = 0;
      count.byPrefix.clear();
    },
  };
}
