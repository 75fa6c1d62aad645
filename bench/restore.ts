/**
 * Restore: daemon start → READY=1 with a big store. The daemon of the largest level already
 * monitors N running containers (their writer still holds every FIFO's write end, as live
 * shims would); `count` containers are handed to GC whose cleanup fails (a path it must remove
 * is a non-empty directory, so `remove-paths` fails without running anything), each then
 * waiting its backoff (an hour) as a stuck entry does. The daemon is stopped (SIGTERM) and
 * started again on the same store; READY=1 comes on a `NOTIFY_SOCKET` the benchmark listens
 * on, sent once the GC list is loaded, every running container's FIFO reopened and checked,
 * and the socket is listening.
 *
 * @module
 */

import { BenchDaemon } from "./_daemon.ts";
import type { EventFeed } from "./_events.ts";
import { ghostBody, type GhostIdentity, IN_FLIGHT } from "./_fleet.ts";
import { nowMs } from "./_clock.ts";
import { mapLimit } from "./_stats.ts";

/** What {@linkcode measureRestore} found. */
export interface RestoreResult {
  /** Running records in the store. */
  running: number;
  /** GC entries in the store. */
  gcEntries: number;
  /** All records in the store (every state). */
  records: number;
  /** SIGTERM → the old daemon gone (ms). */
  stopMs: number;
  /** Spawn → READY=1 (ms). */
  readyMs: number;
  /** Spawn → first healthy answer (ms). */
  healthyMs: number;
  /** What the restarted daemon reports monitoring and holding in GC. */
  monitoredAfter: number;
  gcAfter: number;
  /** The restarted daemon's RSS right after READY (KiB). */
  rssKiB: number;
}

/**
 * Adds `count` stuck GC entries, restarts `daemon` and times the restore. Resolves to the
 * result and the restarted daemon (the caller stops it).
 */
export async function measureRestore(
  daemon: BenchDaemon,
  feed: EventFeed,
  ghost: GhostIdentity,
  count: number,
): Promise<{ result: RestoreResult; daemon: BenchDaemon }> {
  const busy = `${daemon.dir}/busy`;
  await Deno.mkdir(busy, { recursive: true });
  await Deno.writeTextFile(`${busy}/keep`, "a cleanup cannot rmdir a non-empty directory\n");
  const ids = Array.from({ length: count }, (_, i) => `stuck-${i}`);
  const before = feed.count("gc-attempt");
  await mapLimit(
    ids,
    IN_FLIGHT,
    (id) => daemon.call("POST", "/v1/gc", { ...ghostBody(daemon, id, ghost), paths: [busy] }),
  );
  // Every entry has failed its first attempt and waits its backoff.
  await feed.waitCount("gc-attempt", before + count, 300_000);
  const health = await daemon.call("GET", "/v1/health") as { monitored: number; gc: number };
  const records = (await daemon.call("GET", "/v1/containers") as unknown[]).length;
  const dir = daemon.dir;
  const stopping = nowMs();
  await daemon.stop();
  const stopMs = nowMs() - stopping;
  const restarted = await BenchDaemon.restart(dir);
  const memory = restarted.memory();
  const after = await restarted.call("GET", "/v1/health") as { monitored: number; gc: number };
  return {
    daemon: restarted,
    result: {
      running: health.monitored,
      gcEntries: health.gc,
      records,
      stopMs,
      readyMs: restarted.startToReadyMs,
      healthyMs: restarted.startToHealthyMs,
      monitoredAfter: after.monitored,
      gcAfter: after.gc,
      rssKiB: memory.rssKiB,
    },
  };
}
