/**
 * Exit latency: monitored containers exit one every few milliseconds (the writer, standing in
 * for their shims, writes their statuses on a fixed schedule), and each exit is timed from the
 * instant its status was written into the FIFO to
 *
 * - **decoded**: the daemon's `exit.at`, stamped when the epoll loop decoded the 4 bytes
 *   (its `Date.now()`, so ±1 ms);
 * - **recorded**: the `exit` event's line arriving on `/v1/events?follow=1`. The daemon
 *   announces an event only after its KV commit returned (SQLite fsync'ed the WAL), so this is
 *   the moment the exit is durable *and visible to a client*, an upper bound of the commit by
 *   the time to read the page of events and send the line (well under a millisecond here);
 * - **cleaned**: the `stopped` event arriving (cleanup with the runtime done, state dir gone).
 *
 * The daemon's own `reaperd_exit_record_latency_seconds` histogram (decoded → commit returned)
 * is read before and after, and reported as bucket bounds.
 *
 * @module
 */

import type { BenchDaemon } from "./_daemon.ts";
import type { EventFeed } from "./_events.ts";
import { bucketPercentileMs, histogramDelta, meanMs, parseHistogram } from "./_histogram.ts";
import { summarize, type Summary } from "./_stats.ts";
import type { WriterProcess } from "./_writer.ts";

const HISTOGRAM = "reaperd_exit_record_latency_seconds";

/** What {@linkcode measureExitLatency} found (ms). */
export interface LatencyResult {
  /** write → decoded by the epoll loop (daemon clock, ms resolution). */
  toDecoded: Summary;
  /** write → `exit` event on the stream (durable and visible). */
  toRecorded: Summary;
  /** write → `stopped` event on the stream (cleanup done). */
  toCleaned: Summary;
  /** The daemon's histogram over the same exits: p50 and p99 bucket bounds, mean. */
  daemon: { p50: number; p99: number; mean: number; count: number };
}

/**
 * `indexes` (containers already monitored, by id) exit one every `gapMs` — the writer keeps
 * the pace on its own clock, so a slow daemon does not slow the writes down — and the result
 * says how long each took to be decoded, to be on the stream, and to be cleaned up.
 */
export async function measureExitLatency(
  daemon: BenchDaemon,
  feed: EventFeed,
  writer: WriterProcess,
  indexes: ReadonlyMap<string, number>,
  gapMs: number,
): Promise<LatencyResult> {
  const before = parseHistogram(await daemon.metrics(), HISTOGRAM);
  const ids = [...indexes.keys()];
  const code = 3;
  const written = await writer.paced(ids.map((id) => indexes.get(id)!), gapMs, code);
  const recorded = await Promise.all(ids.map((id) => feed.waitFor("exit", id)));
  const cleaned = await Promise.all(ids.map((id) => feed.waitFor("stopped", id, 300_000)));
  const toDecoded: number[] = [];
  const toRecorded: number[] = [];
  const toCleaned: number[] = [];
  ids.forEach((id, i) => {
    const event = recorded[i]!.event;
    if (event.kind !== "exit") throw new Error(`${id}: not an exit event`);
    const exit = event.detail.exit;
    if (exit.code !== code) throw new Error(`${id}: exit code ${exit.code}, wrote ${code}`);
    toDecoded.push(exit.at - written[i]!);
    toRecorded.push(recorded[i]!.arrivedAt - written[i]!);
    toCleaned.push(cleaned[i]!.arrivedAt - written[i]!);
  });
  const delta = histogramDelta(before, parseHistogram(await daemon.metrics(), HISTOGRAM));
  return {
    toDecoded: summarize(toDecoded),
    toRecorded: summarize(toRecorded),
    toCleaned: summarize(toCleaned),
    daemon: {
      p50: bucketPercentileMs(delta, 50),
      p99: bucketPercentileMs(delta, 99),
      mean: meanMs(delta),
      count: delta.count,
    },
  };
}
