/**
 * A cleanup plan: an ordered list of idempotent steps, each timed and recorded. The plan stops
 * at the first failing fatal step; what follows waits for the next attempt, which starts from
 * the top again (every step is safe to repeat).
 *
 * @module
 */

import type { CleanupOutcome } from "../gc/cleaner.ts";
import type { CommandRunner } from "../sys/command.ts";
import type { ContainerRecord, StepResult } from "../types.ts";
import type { CleanupSettings } from "./config.ts";
import type { ThawReport } from "./freezer.ts";
import type { RuntimeCall } from "./runtime_cli.ts";
import { tail } from "./runtime_cli.ts";
import { errorMessage } from "../error_message.ts";

/** What a step works with. */
export interface StepContext {
  /** The container being cleaned. */
  record: ContainerRecord;
  /** Its runtime, resolved from the config. */
  runtime: RuntimeCall;
  /** The pass's knobs. */
  settings: CleanupSettings;
  /** How helpers are run (the real {@linkcode CommandRunner} or a test's fake). */
  run: CommandRunner;
  /** How the step waits between checks. */
  sleep: (ms: number) => Promise<void>;
  /** How a process's cgroup freezer is thawed (freezer.ts `thawProcess` unless a test swaps it). */
  thaw: (pid: number) => ThawReport;
}

/** What one step reports. */
export interface StepOutcome {
  /** Whether the step reached its goal (already done counts). */
  ok: boolean;
  /** The helper's exit code, or null when no helper ran or it was killed. */
  exitCode: number | null;
  /** The helper's stderr, or what the step has to say (why it failed, why it had nothing to do). */
  detail: string;
  /** The container process's /proc state char when it would not die, else absent. */
  procState?: string;
  /** True when the step had no reason to run; `detail` says why. */
  skipped?: boolean;
}

/** One step of a plan. */
export interface CleanupStep {
  /** Its name in records ("kill-shim", "runtime-delete"…). */
  name: string;
  /** When false, a failure is recorded and the plan goes on (iSulad warns and continues). */
  fatal: boolean;
  /** Does the work; may throw, which counts as a failure with the error's message. */
  run(ctx: StepContext): Promise<StepOutcome>;
}

/**
 * A failed pass that ran no step (bad record, unknown runtime). Its `failedStep` is null, as
 * the collector's contract wants for a failure outside any step; `error` says what it was.
 */
export function refusedOutcome(error: string): CleanupOutcome {
  return { ok: false, steps: [], failedStep: null, error, stderrTail: error, procState: null };
}

/** Runs `steps` in order and gathers the outcome. Never throws. */
export async function runPlan(steps: CleanupStep[], ctx: StepContext): Promise<CleanupOutcome> {
  const results: StepResult[] = [];
  for (const step of steps) {
    const started = performance.now();
    let outcome: StepOutcome;
    try {
      outcome = await step.run(ctx);
    } catch (e) {
      outcome = { ok: false, exitCode: null, detail: errorMessage(e) };
    }
    const stderrTail = tail(outcome.detail, ctx.settings.stderrTailChars);
    results.push({
      step: step.name,
      ok: outcome.ok,
      exitCode: outcome.exitCode,
      stderrTail,
      durationMs: Math.round(performance.now() - started),
      ...(outcome.skipped ? { skipped: true } : {}),
    });
    if (!outcome.ok && step.fatal) {
      return {
        ok: false,
        steps: results,
        failedStep: step.name,
        error: `${step.name}: ${lastLine(outcome.detail) || "failed"}`,
        stderrTail,
        procState: outcome.procState ?? null,
      };
    }
  }
  return {
    ok: true,
    steps: results,
    failedStep: null,
    error: null,
    stderrTail: "",
    procState: null,
  };
}

/** The last non-empty line: runtimes put the reason at the end of what they print. */
function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter((l) => l.trim() !== "");
  return (lines[lines.length - 1] ?? "").trim().slice(0, 300);
}
