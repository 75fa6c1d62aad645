/**
 * Burst: `size` containers (on top of the N already monitored) exit at once — the writer puts
 * all their statuses into their FIFOs back to back — and the clock runs from the first write
 * until the last `exit` event is on the stream (every exit durable and visible), and on until
 * the last `stopped` event (every cleanup done, each calling the runtime twice).
 *
 * @module
 */

import type { BenchDaemon } from "./_daemon.ts";
import type { EventFeed } from "./_events.ts";
import { type GhostIdentity, registerContainers } from "./_fleet.ts";
import { sleep, summarize, type Summary } from "./_stats.ts";
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
}

/** Registers `size` more containers, then makes them all exit at once. */
export async function measureBurst(
  daemon: BenchDaemon,
  feed: EventFeed,
  writer: WriterProcess,
  ghost: GhostIdentity,
  label: string,
  size: number,
): Promise<BurstResult> {
  const ids = Array.from({ length: size }, (_, i) => `burst-${label}-${i}`);
  const index = await registerContainers(daemon, writer, ids, ghost);
  await sleep(500);
  const written = await writer.burst(ids.map((id) => index.get(id)!), 3);
  const first = Math.min(...written);
  const recorded = await Promise.all(ids.map((id) => feed.waitFor("exit", id, 120_000)));
  const cleaned = await Promise.all(ids.map((id) => feed.waitFor("stopped", id, 300_000)));
  return {
    size,
    writeSpanMs: Math.max(...written) - first,
    allRecordedMs: Math.max(...recorded.map((a) => a.arrivedAt)) - first,
    perExit: summarize(recorded.map((a, i) => a.arrivedAt - written[i]!)),
    allCleanedMs: Math.max(...cleaned.map((a) => a.arrivedAt)) - first,
  };
}
