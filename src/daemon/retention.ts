/**
 * Forgetting stopped containers. A record in state `stopped` is of use to `inspect` and `wait`
 * for a while after the container ended; kept forever, the records of every container a host
 * ever ran would pile up in the store and be read again by every restore. The sweep deletes
 * the records stopped longer ago than `stoppedRetentionMs`, once at start and then a few times
 * per retention period (at most hourly). The store finds the records due by their stop time, so
 * a sweep reads those and no other, however many records the store holds.
 *
 * Records carry wall-clock times, and the wall clock can be stepped (NTP, an operator, a VM
 * restored from a snapshot). A step forward must not make fresh records look old, so "now" for
 * the sweep is never later than the wall time at start plus the monotonic time elapsed since:
 * stepped forward, the wall clock is not believed; stepped back, records look younger and are
 * kept longer, never forgotten early.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";

const MIN_SWEEP_MS = 1_000;
const MAX_SWEEP_MS = 3_600_000;

/** What {@linkcode startRetention} needs. */
export interface RetentionOptions {
  store: Pick<Store, "forgetStopped">;
  /** How long a stopped record is kept (ms); 0 turns the sweep off. */
  retentionMs: number;
  log: Logger;
  /** Wall clock (ms since the epoch); `Date.now` unless a test swaps it. */
  clock?: () => number;
  /** Monotonic clock (ms, any origin); `performance.now` unless a test swaps it. */
  monotonic?: () => number;
}

/** How far the wall clock may drift from monotonic time before the sweep says so (ms). */
const STEP_NOTICE_MS = 5_000;

/**
 * A wall clock that never runs ahead of monotonic time: the wall time at creation plus the
 * monotonic time elapsed, or the wall time now if that is earlier. `stepped` tells how far the
 * wall clock has moved away from monotonic time since (positive: forward).
 */
export function steadyWallClock(
  clock: () => number,
  monotonic: () => number,
): { now: () => number; stepped: () => number } {
  const wallAtStart = clock();
  const monoAtStart = monotonic();
  const trusted = () => wallAtStart + (monotonic() - monoAtStart);
  return {
    now: () => Math.min(clock(), trusted()),
    stepped: () => clock() - trusted(),
  };
}

/** How often the sweep runs for a retention: a quarter of it, within 1 s … 1 h. */
export function sweepIntervalMs(retentionMs: number): number {
  return Math.min(Math.max(Math.floor(retentionMs / 4), MIN_SWEEP_MS), MAX_SWEEP_MS);
}

/**
 * Sweeps now and then periodically; returns a function that stops the sweeps and resolves
 * once a sweep in progress has ended. A failed sweep is logged and tried again next time.
 */
export function startRetention(options: RetentionOptions): () => Promise<void> {
  const { store, retentionMs, log } = options;
  if (retentionMs === 0) return () => Promise.resolve();
  const clock = steadyWallClock(
    options.clock ?? Date.now,
    options.monotonic ?? (() => performance.now()),
  );
  let running: Promise<void> | null = null;
  let toldStep = 0;
  const sweep = () => {
    if (running !== null) return;
    const stepped = clock.stepped();
    if (Math.abs(stepped - toldStep) > STEP_NOTICE_MS) {
      toldStep = stepped;
      log.warn(
        "the wall clock moved {stepped} ms away from monotonic time since start; retention counts by the earlier of the two",
        { stepped: Math.round(stepped) },
      );
    }
    running = store.forgetStopped(clock.now() - retentionMs).then(
      (count) => {
        if (count > 0) {
          log.info("forgot {count} containers stopped more than {retentionMs} ms ago", {
            count,
            retentionMs,
          });
        }
      },
      (error) =>
        log.warn("forgetting stopped containers failed: {error}", { error: String(error) }),
    ).finally(() => {
      running = null;
    });
  };
  sweep();
  const timer = setInterval(sweep, sweepIntervalMs(retentionMs));
  return async () => {
    clearInterval(timer);
    await running;
  };
}
