/**
 * Burst: every monitored container exits at once — the writer puts
 * all their statuses into their FIFOs back to back — and the clock runs from the first write
 * until the last `exit` event is on the stream (every exit durable and visible), and on until
 * the last `stopped` event (every cleanup done, each calling the runtime once: the init is known
 * dead, so only `delete --force` runs).
 *
 * @module
 */

import type { EventFeed } from "./_events.ts";
import { summarize, type Summary } from "./_stats.ts";
import type { WriterProcess } from "./_writer.ts";

/** What {@linkcode measureBurst} found (ms). */
export interface BurstResult {
  /** How many exits. */
  size: number;
  /** How long the writer took to write them all. */
  writeSpanMs: number;
  /** First write → last exit recorded (on the stream). */
  allRecordedMs: number;
  /** Per exit: its write → its exit on the stream. */
  perExit: Summary;
  /** First write → last cleanup done. */
  allCleanedMs: number;
  /** Cleanups per second over the whole burst. */
  cleanedPerSecond: number;
}

/** Makes every container of `indexes` (monitored, by id) exit at once. */
export async function measureBurst(
  feed: EventFeed,
  writer: WriterProcess,
  indexes: ReadonlyMap<string, number>,
): Promise<BurstResult> {
  const ids = [...indexes.keys()];
  const written = await writer.burst(ids.map((id) => indexes.get(id)!), 3);
  const first = Math.min(...written);
  const recorded = await Promise.all(ids.map((id) => feed.waitFor("exit", id, 120_000)));
  const cleaned = await Promise.all(ids.map((id) => feed.waitFor("stopped", id, 600_000)));
  const allCleanedMs = Math.max(...cleaned.map((a) => a.arrivedAt)) - first;
  return {
    size: ids.length,
    writeSpanMs: Math.max(...written) - first,
    allRecordedMs: Math.max(...recorded.map((a) => a.arrivedAt)) - first,
    perExit: summarize(recorded.map((a, i) => a.arrivedAt - written[i]!)),
    allCleanedMs,
    cleanedPerSecond: ids.length / (allCleanedMs / 1000),
  };
}
