import assert from "node:assert/strict";
import { runCommand } from "../sys/command.ts";
import type { ContainerRecord } from "../types.ts";
import { defaultCleanupSettings } from "./config.ts";
import { oci } from "./kinds/mod.ts";
import { type CleanupStep, refusedOutcome, runPlan, type StepContext } from "./plan.ts";

const ctx: StepContext = {
  record: {} as ContainerRecord,
  runtime: {
    name: "runc",
    spec: { path: "/bin/false", args: [] },
    kind: oci,
    stateDir: "/s/runc/c1",
  },
  settings: { ...defaultCleanupSettings("/s"), stderrTailChars: 20 },
  run: runCommand,
  sleep: () => Promise.resolve(),
  thaw: () => ({ thawed: [], errors: [] }),
};

function step(name: string, fatal: boolean, ok: boolean | "throw", log: string[]): CleanupStep {
  return {
    name,
    fatal,
    run() {
      log.push(name);
      if (ok === "throw") throw new Error(`${name} blew up`);
      return Promise.resolve({ ok, exitCode: ok ? 0 : 1, detail: `${name} said\nits last line` });
    },
  };
}

Deno.test("runPlan runs every step and succeeds when all do", async () => {
  const log: string[] = [];
  const out = await runPlan([step("a", true, true, log), step("b", true, true, log)], ctx);
  assert.deepEqual(log, ["a", "b"]);
  assert.equal(out.ok, true);
  assert.equal(out.failedStep, null);
  assert.equal(out.error, null);
  assert.deepEqual(out.steps.map((s) => s.step), ["a", "b"]);
});

Deno.test("runPlan stops at the first failing fatal step, not at a non-fatal one", async () => {
  const log: string[] = [];
  const out = await runPlan([
    step("warn", false, false, log),
    step("fatal", true, false, log),
    step("later", true, true, log),
  ], ctx);
  assert.deepEqual(log, ["warn", "fatal"]);
  assert.equal(out.ok, false);
  assert.equal(out.failedStep, "fatal");
  assert.equal(out.error, "fatal: its last line");
  assert.deepEqual(out.steps.map((s) => [s.step, s.ok, s.exitCode]), [
    ["warn", false, 1],
    ["fatal", false, 1],
  ]);
  // The tail is cut to stderrTailChars.
  assert.equal(out.stderrTail.length, 20);
});

Deno.test("a step that throws fails with its message and does not crash the plan", async () => {
  const log: string[] = [];
  const out = await runPlan([step("boom", true, "throw", log), step("x", true, true, log)], ctx);
  assert.equal(out.failedStep, "boom");
  assert.equal(out.error, "boom: boom blew up");
  assert.deepEqual(log, ["boom"]);
});

Deno.test("refusedOutcome runs no step", () => {
  const out = refusedOutcome("bad id");
  assert.deepEqual(out, {
    ok: false,
    steps: [],
    failedStep: null,
    error: "bad id",
    stderrTail: "bad id",
    procState: null,
  });
});
