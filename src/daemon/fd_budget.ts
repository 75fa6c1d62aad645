/**
 * How many client connections the daemon may hold without taking the descriptors its exit
 * path needs. Each watched container costs its FIFO's read end and, at times, a pidfd; each
 * cleanup spawns helpers with pipes; the store and the runtime hold a few files. Clients get
 * what is left under the open-file limit in force now (an operator or `prlimit` may lower it
 * while the daemon runs), and never more than the configured cap.
 *
 * @module
 */

import { getFdLimit } from "../sys/libc.ts";

/** Descriptors kept for the runtime, the store, the epoll loop and the helpers of cleanups. */
export const FD_RESERVE_BASE = 256;
/** Descriptors kept per concurrent cleanup (a helper's three pipes, its pidfd, slack). */
export const FD_RESERVE_PER_CLEANUP = 16;
/** Descriptors counted per watched container (its FIFO and a pidfd). */
export const FD_PER_CONTAINER = 2;

/** What the budget is computed from. */
export interface FdBudgetInput {
  /** The soft RLIMIT_NOFILE now. */
  softLimit: number;
  /** Containers watched plus FIFO read ends held. */
  containers: number;
  /** Cleanups that may run at once. */
  cleanupConcurrency: number;
  /** The configured cap (`http.maxConnections`). */
  configured: number;
}

/**
 * Client connections allowed now: the configured cap, or what the descriptor limit leaves
 * after the reserve, whichever is smaller; at least 1, so that an operator can still ask
 * `reaperd health` why everything else is refused.
 */
export function connectionBudget(input: FdBudgetInput): number {
  const reserved = FD_RESERVE_BASE + FD_RESERVE_PER_CLEANUP * input.cleanupConcurrency +
    FD_PER_CONTAINER * input.containers;
  return Math.max(1, Math.min(input.configured, input.softLimit - reserved));
}

/** The soft open-file limit in force now. */
export function currentSoftFdLimit(): number {
  return getFdLimit().soft;
}
