/**
 * The contract between the collector, which decides when to clean, and the per-runtime code in
 * `src/runtime/`, which knows how. The collector never looks inside a cleanup plan.
 *
 * @module
 */

import type { ContainerRecord, StepResult } from "../types.ts";

/** What one cleanup attempt achieved. */
export interface CleanupOutcome {
  /** True when every step reached its goal: the container's leftovers are gone. */
  ok: boolean;
  /** Each step that ran, in order, with its result. */
  steps: StepResult[];
  /** The step that failed, or null when none did (or the failure was outside any step). */
  failedStep: string | null;
  /** Why the attempt failed, in one line; null when it succeeded. */
  error: string | null;
  /** The failing step's stderr tail; empty when it succeeded. */
  stderrTail: string;
  /** The container process's /proc state char when it would not die ("D", "Z"…), else null. */
  procState: string | null;
}

/**
 * Cleans what a container left behind. Implementations must be idempotent (the collector may
 * run the same container again after a crash) and bound each step with its own timeout: a
 * `clean` that never settles occupies one of the collector's slots for good.
 */
export interface Cleaner {
  /**
   * Runs one cleanup attempt for `record`. Reports failure in the outcome; a throw is taken
   * as a failed attempt too.
   */
  clean(record: ContainerRecord): Promise<CleanupOutcome>;
}
