/**
 * Bounds on the free text that reaches the store (stderr tails, error messages, step lists), so
 * that every value stays well under Deno KV's 64 KiB limit whatever a helper prints. Strings
 * may be two bytes a character once serialised, so the budget is counted in characters × 2.
 *
 * @module
 */

import type { ExitStatus, StepResult } from "../types.ts";

/** Longest error message or exit reason kept (characters). */
export const MAX_MESSAGE = 1024;
/** Longest stderr tail kept in a GC entry (characters). */
export const MAX_TAIL = 4096;
/** Longest stderr tail kept per step in an event (characters). */
export const MAX_STEP_TAIL = 1024;
/** Most step results kept in one event (the last ones). */
export const MAX_STEPS = 16;
/** Longest step name kept (characters). */
export const MAX_STEP_NAME = 128;

/** The last `max` characters of `text` (a tail is where a helper says why it failed). */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}

/** The first `max` characters of `text`, or null for null. */
export function head(text: string | null, max: number): string | null {
  if (text === null) return null;
  return text.length <= max ? text : text.slice(0, max);
}

/** Step results cut to the last {@linkcode MAX_STEPS}, each with bounded text. */
export function clampSteps(steps: readonly StepResult[]): StepResult[] {
  return steps.slice(-MAX_STEPS).map((s) => ({
    step: head(s.step, MAX_STEP_NAME) ?? "",
    ok: s.ok,
    exitCode: s.exitCode,
    stderrTail: tail(s.stderrTail, MAX_STEP_TAIL),
    durationMs: s.durationMs,
    ...(s.skipped === undefined ? {} : { skipped: s.skipped }),
  }));
}

/** An exit status with a bounded reason. */
export function clampExit(exit: ExitStatus): ExitStatus {
  return {
    code: exit.code,
    signal: exit.signal,
    known: exit.known,
    // Beside the code, where a reader of the JSON looks for why the process died.
    ...(exit.oomKilled === undefined ? {} : { oomKilled: exit.oomKilled }),
    reason: head(exit.reason, MAX_MESSAGE) ?? "",
    at: exit.at,
  };
}
