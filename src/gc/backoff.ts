/**
 * Exponential backoff with jitter for GC retries: the delay before the next attempt doubles
 * with each failure up to a cap, and jitter spreads containers that failed together so they do
 * not retry in lockstep. There is no retry limit; the cap bounds how long one waits.
 *
 * @module
 */

/**
 * How the delay is drawn below its ceiling:
 * - `"full"`: uniform in [0, ceiling] (spreads most; a retry may come at once);
 * - `"equal"`: uniform in [ceiling / 2, ceiling] (keeps at least half the spacing);
 * - `"none"`: the ceiling itself.
 */
export type Jitter = "full" | "equal" | "none";

/** The knobs of a backoff. */
export interface BackoffPolicy {
  /** Ceiling after the first failure (ms, > 0). */
  baseMs: number;
  /** Cap on any ceiling (ms, ≥ baseMs). */
  maxMs: number;
  /** How the delay is drawn below the ceiling. */
  jitter: Jitter;
}

/** The defaults of the `gc.*` knobs: 500 ms doubling up to 60 s, equal jitter. */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = {
  baseMs: 500,
  maxMs: 60_000,
  jitter: "equal",
};

/** Throws RangeError unless `policy` is usable. */
export function assertBackoffPolicy(policy: BackoffPolicy): void {
  if (!Number.isFinite(policy.baseMs) || policy.baseMs <= 0) {
    throw new RangeError(`backoff base must be > 0 ms, got ${policy.baseMs}`);
  }
  if (!Number.isFinite(policy.maxMs) || policy.maxMs < policy.baseMs) {
    throw new RangeError(`backoff max must be >= base (${policy.baseMs} ms), got ${policy.maxMs}`);
  }
  if (!["full", "equal", "none"].includes(policy.jitter)) {
    throw new RangeError(`backoff jitter must be full, equal or none, got ${policy.jitter}`);
  }
}

/**
 * The ceiling of the delay after `failures` consecutive failures: `base × 2^(failures−1)`,
 * capped at `max`.
 *
 * @param failures Failures so far (≥ 1; smaller counts as 1).
 * @param policy The knobs.
 */
export function backoffCeiling(failures: number, policy: BackoffPolicy): number {
  // 2^60 × any base is past any sane cap; stop there so the product stays finite.
  const exponent = Math.min(Math.max(Math.floor(failures), 1) - 1, 60);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
}

/**
 * The range {@linkcode backoffDelay} draws from after `failures` failures.
 *
 * @returns The smallest and largest possible delay (ms).
 */
export function backoffBounds(
  failures: number,
  policy: BackoffPolicy,
): { min: number; max: number } {
  const ceiling = backoffCeiling(failures, policy);
  switch (policy.jitter) {
    case "full":
      return { min: 0, max: ceiling };
    case "equal":
      return { min: ceiling / 2, max: ceiling };
    case "none":
      return { min: ceiling, max: ceiling };
  }
}

/**
 * The delay before the next attempt after `failures` consecutive failures.
 *
 * @param failures Failures so far (≥ 1).
 * @param policy The knobs.
 * @param random Uniform in [0, 1), for tests.
 * @returns A delay in whole ms within {@linkcode backoffBounds}.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 * const policy = { baseMs: 500, maxMs: 60_000, jitter: "equal" } as const;
 * console.assert(backoffDelay(3, policy, () => 0) === 1_000); // ceiling 2 000, half of it
 * console.assert(backoffDelay(30, policy, () => 0.5) === 45_000); // capped at 60 000
 * ```
 */
export function backoffDelay(
  failures: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const { min, max } = backoffBounds(failures, policy);
  return Math.round(min + (max - min) * random());
}
