import assert from "node:assert/strict";
import type { StepResult } from "../types.ts";
import { Store } from "./store.ts";
import { exitWith, registration, withKv, withKvPath } from "./_test_util.ts";

const SKIPPED: StepResult = {
  step: "kill-container",
  ok: true,
  exitCode: null,
  stderrTail: "skipped: container process 100 is not running",
  durationMs: 0,
  skipped: true,
};
const FAILED: StepResult = {
  step: "runtime-delete",
  ok: false,
  exitCode: 1,
  stderrTail: "busy",
  durationMs: 4,
};

Deno.test("the events of a cleanup keep which of its steps were skipped", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv, { clock: () => 7_000 });
      await store.register(registration("c1"));
      await store.recordExit("c1", 100, 1000, exitWith(0));
      const failed = [SKIPPED, FAILED];
      await store.enterGc("c1", { lastStep: "runtime-delete", steps: failed });
      await store.recordGcAttempt("c1", {
        attempts: 2,
        nextAttemptAt: 8_000,
        lastStep: "runtime-delete",
        lastError: "exit 1",
        stderrTail: "busy",
        procState: null,
        steps: failed,
      });
      await store.finishGc("c1", [SKIPPED, { ...FAILED, ok: true, exitCode: 0, stderrTail: "" }]);
      const steps = (await store.eventsSince(0))
        .filter((e) => e.kind === "gc" || e.kind === "gc-attempt" || e.kind === "gc-done")
        .map((e) => [e.kind, (e.detail as { steps: StepResult[] }).steps.map((s) => s.skipped)]);
      assert.deepEqual(steps, [
        ["gc", [true, undefined]],
        ["gc-attempt", [true, undefined]],
        ["gc-done", [true, undefined]],
      ]);
    })
  );
});
