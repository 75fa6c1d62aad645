/**
 * Helpers for tests that need a real KV file on disk: a temp dir removed afterwards, and a
 * `Deno.Kv` wrapper whose commits can be made to fail or race on demand.
 *
 * @module
 */

import type { ExitStatus } from "../types.ts";
import type { RegisterInput } from "./store.ts";

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
