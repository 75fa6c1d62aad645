/**
 * Exit latency: one container exits at a time, with N others monitored, and each exit is timed
 * from the instant the writer (the shim) wrote its status into the FIFO to
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
import { type GhostIdentity, registerContainers } from "./_fleet.ts";
import { bucketPercentileMs, histogramDelta, meanMs, parseHistogram } from "./_histogram.ts";
import { sleep, summarize, type Summary } from "./_stats.ts";
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
 * Registers `rounds` containers one at a time on top of those already monitored, lets each
 * exit right after its registration and waits until it is cleaned before the next.
 */
export async function measureExitLatency(
  daemon: BenchDaemon,
  feed: EventFeed,
  writer: WriterProcess,
  ghost: GhostIdentity,
  label: string,
  rounds: number,
): Promise<LatencyResult> {
  const before = parseHistogram(await daemon.metrics(), HISTOGRAM);
  const toDecoded: number[] = [];
  const toRecorded: number[] = [];
  const toCleaned: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const id = `lat-${label}-${i}`;
    const index = (await registerContainers(daemon, writer, [id], ghost)).get(id)!;
    // Let the registration's own work (its commit, its log line) finish first.
    await sleep(3 + (i % 5));
    const writtenAt = await writer.exit(index, i % 256);
    const recorded = await feed.waitFor("exit", id);
    const cleaned = await feed.waitFor("stopped", id);
    if (recorded.event.kind !== "exit") throw new Error(`${id}: not an exit event`);
    const exit = recorded.event.detail.exit;
    if (exit.code !== i % 256) throw new Error(`${id}: exit code ${exit.code}, wrote ${i % 256}`);
    toDecoded.push(exit.at - writtenAt);
    toRecorded.push(recorded.arrivedAt - writtenAt);
    toCleaned.push(cleaned.arrivedAt - writtenAt);
  }
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
