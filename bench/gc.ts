/**
 * GC throughput: `count` containers handed to the collector at once (`POST /v1/gc`, as
 * `reaperd gc add` does) with an instant runtime (`/bin/true`); each entry's init is known dead,
 * so its cleanup calls the runtime once (`delete --force`: its `--root` exists, as runc's would;
 * `kill` is skipped) and removes
 * the state dir. The clock runs from the first request to the last `gc-done` event.
 *
 * @module
 */

import type { BenchDaemon } from "./_daemon.ts";
import type { EventFeed } from "./_events.ts";
import { ghostBody, type GhostIdentity, IN_FLIGHT, RUNTIME, stateDirOf } from "./_fleet.ts";
import { nowMs } from "./_clock.ts";
import { mapLimit } from "./_stats.ts";

/** What {@linkcode measureGc} found. */
export interface GcResult {
  /** Entries handed over. */
  count: number;
  /** First request → every entry accepted (ms). */
  addMs: number;
  /** First request → last entry cleaned (ms). */
  totalMs: number;
  /** count / totalMs, per second. */
  perSecond: number;
}

/** Hands `count` containers to GC and times until all are cleaned. */
export async function measureGc(
  daemon: BenchDaemon,
  feed: EventFeed,
  ghost: GhostIdentity,
  label: string,
  count: number,
): Promise<GcResult> {
  const ids = Array.from({ length: count }, (_, i) => `gc-${label}-${i}`);
  for (const id of ids) {
    await Deno.mkdir(`${stateDirOf(daemon, id)}/${RUNTIME}`, { recursive: true });
  }
  const start = nowMs();
  await mapLimit(
    ids,
    IN_FLIGHT,
    (id) => daemon.call("POST", "/v1/gc", ghostBody(daemon, id, ghost)),
  );
  const added = nowMs();
  const done = await Promise.all(ids.map((id) => feed.waitFor("gc-done", id, 300_000)));
  const totalMs = Math.max(...done.map((a) => a.arrivedAt)) - start;
  return { count, addMs: added - start, totalMs, perSecond: count / (totalMs / 1000) };
}
