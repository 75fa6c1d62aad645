/**
 * Forgetting stopped containers. A record in state `stopped` is of use to `inspect` and `wait`
 * for a while after the container ended; kept forever, the records of every container a host
 * ever ran would pile up in the store and be read again by every restore. The sweep deletes
 * the records stopped longer ago than `stoppedRetentionMs`, once at start and then a few times
 * per retention period (at most hourly).
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
  const clock = options.clock ?? Date.now;
  let running: Promise<void> | null = null;
  const sweep = () => {
    if (running !== null) return;
    running = store.forgetStopped(clock() - retentionMs).then(
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
