/**
 * Exit recording under read load: `readers` keep-alive clients in a process of their own call
 * `ps` and `inspect` as fast as the daemon answers, against `containers` monitored containers,
 * while `exits` more containers exit one at a time, 20 ms apart. Each exit is timed from the
 * writer's write into the FIFO to the `exit` event's line arriving on `/v1/events?follow=1`
 * (durable and visible), as in latency.ts. Also: how many reads the daemon answered meanwhile
 * and its RSS before and at its highest.
 *
 * Alone: `deno run -A bench/read_load.ts [--readers=500] [--containers=200] [--exits=200]`.
 *
 * @module
 */

import { BenchDaemon, readMemory } from "./_daemon.ts";
import { EventFeed } from "./_events.ts";
import { type GhostIdentity, ghostIdentity, registerContainers } from "./_fleet.ts";
import { bucketPercentileMs, histogramDelta, parseHistogram } from "./_histogram.ts";
import { ReaderProcess } from "./_readers.ts";
import { fmt, fmtSummary, sleep, summarize, type Summary } from "./_stats.ts";
import { WriterProcess } from "./_writer.ts";

const HISTOGRAM = "reaperd_exit_record_latency_seconds";

/** What {@linkcode measureReadLoad} found. */
export interface ReadLoadResult {
  readers: number;
  containers: number;
  exits: number;
  /** write → `exit` event on the stream (ms). */
  toRecorded: Summary;
  /** write → decoded by the daemon's epoll loop (its `exit.at`, ms resolution). */
  toDecoded: Summary;
  /** The daemon's own histogram, decoded → committed: p50 and p99 bucket bounds (ms). */
  daemon: { p50: number; p99: number };
  /** Reads answered per second while the exits were measured. */
  readsPerSecond: number;
  /** Reads that failed (non-200 or a dropped connection). */
  readErrors: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
}

/** Options of {@linkcode measureReadLoad}. */
export interface ReadLoadOptions {
  readers: number;
  containers: number;
  exits: number;
  label: string;
}

/** Runs the read load and the exits; see the module doc. */
export async function measureReadLoad(
  daemon: BenchDaemon,
  feed: EventFeed,
  writer: WriterProcess,
  ghost: GhostIdentity,
  options: ReadLoadOptions,
): Promise<ReadLoadResult> {
  const read = Array.from({ length: options.containers }, (_, i) => `rl-${options.label}-c${i}`);
  await registerContainers(daemon, writer, read, ghost);
  const exiting = Array.from({ length: options.exits }, (_, i) => `rl-${options.label}-x${i}`);
  const index = await registerContainers(daemon, writer, exiting, ghost);
  await sleep(500);
  const rssBefore = readMemory(daemon.pid).rssKiB;
  const histogramBefore = parseHistogram(await daemon.metrics(), HISTOGRAM);
  let rssPeak = rssBefore;
  const readers = await ReaderProcess.start(daemon.socket, options.readers, read);
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, readMemory(daemon.pid).rssKiB);
  }, 200);
  const latencies: number[] = [];
  const decoded: number[] = [];
  try {
    // Let every reader get going first.
    await sleep(1000);
    for (const [i, id] of exiting.entries()) {
      const writtenAt = await writer.exit(index.get(id)!, i % 256);
      const recorded = await feed.waitFor("exit", id, 120_000);
      if (recorded.event.kind !== "exit") throw new Error(`${id}: not an exit event`);
      const exit = recorded.event.detail.exit;
      if (exit.code !== i % 256) throw new Error(`${id}: exit code ${exit.code}, wrote ${i % 256}`);
      latencies.push(recorded.arrivedAt - writtenAt);
      decoded.push(exit.at - writtenAt);
      await sleep(20);
    }
  } finally {
    clearInterval(sampler);
  }
  const load = await readers.stop();
  const delta = histogramDelta(histogramBefore, parseHistogram(await daemon.metrics(), HISTOGRAM));
  return {
    readers: options.readers,
    containers: options.containers,
    exits: options.exits,
    toRecorded: summarize(latencies),
    toDecoded: summarize(decoded),
    daemon: { p50: bucketPercentileMs(delta, 50), p99: bucketPercentileMs(delta, 99) },
    readsPerSecond: load.perSecond,
    readErrors: load.errors,
    rssBeforeMiB: rssBefore / 1024,
    rssPeakMiB: rssPeak / 1024,
  };
}

/** One line for a table row: p50 / p99 / max, reads/s, RSS. */
export function describeReadLoad(r: ReadLoadResult): string {
  return `exit write → recorded (ms) p50 / p99 / max: ${fmtSummary(r.toRecorded)} ` +
    `(write → decoded ${fmtSummary(r.toDecoded)}; daemon decoded → committed p50 ≤ ${
      fmt(r.daemon.p50)
    }, p99 ≤ ${fmt(r.daemon.p99)}); ` +
    `${fmt(r.readsPerSecond, 0)} reads/s answered (${r.readErrors} failed); ` +
    `RSS ${fmt(r.rssBeforeMiB)} → peak ${fmt(r.rssPeakMiB)} MiB`;
}

if (import.meta.main) {
  const flags = Object.fromEntries(
    Deno.args.map((a) => a.match(/^--([a-z]+)=(\d+)$/)).filter((m) => m !== null).map((m) => [
      m![1]!,
      Number(m![2]),
    ]),
  );
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bench-reads-" });
  const daemon = await BenchDaemon.start({
    dir,
    runtimes: { fake: { path: "/bin/true" } },
    gc: { backoffBaseMs: 3_600_000, backoffMaxMs: 3_600_000 },
  });
  const writer = await WriterProcess.start();
  const feed = await EventFeed.start(daemon.socket);
  try {
    const result = await measureReadLoad(daemon, feed, writer, ghostIdentity(), {
      readers: flags.readers ?? 500,
      containers: flags.containers ?? 200,
      exits: flags.exits ?? 200,
      label: "solo",
    });
    const out = new TextEncoder().encode(
      `${JSON.stringify(result, null, 2)}\n${describeReadLoad(result)}\n`,
    );
    Deno.stdout.writeSync(out);
  } finally {
    await feed.close();
    await daemon.stop();
    await writer.close();
    await Deno.remove(dir, { recursive: true });
  }
}
