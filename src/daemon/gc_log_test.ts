import assert from "node:assert/strict";
import { configureLogging, getLogger, resetLogging } from "../log.ts";
import type { CleanupOutcome } from "../gc/cleaner.ts";
import { gcLogger, isLoggedFailure } from "./gc_log.ts";

const FAILED: CleanupOutcome = {
  ok: false,
  steps: [],
  failedStep: "runtime-delete",
  error: "runc delete exited with status 1",
  stderrTail: "busy",
  procState: null,
};

Deno.test("isLoggedFailure() is true for the first failure and each doubling", () => {
  const logged = Array.from({ length: 70 }, (_, i) => i + 1).filter(isLoggedFailure);
  assert.deepEqual(logged, [1, 2, 4, 8, 16, 32, 64]);
});

Deno.test("gcLogger() tells a container's GC story: first failure, doublings, success", () => {
  const lines: string[] = [];
  configureLogging({ level: "info", journal: true, write: (line) => lines.push(line) });
  try {
    const observe = gcLogger(getLogger("gc"));
    for (let attempt = 1; attempt <= 10; attempt++) {
      observe({ type: "attempt-started", id: "web-1", runtime: "runc", attempt, at: 0 });
      observe({
        type: "attempt-finished",
        id: "web-1",
        runtime: "runc",
        attempt,
        ok: false,
        durationMs: 5,
        nextAttemptAt: 1_700_000_000_000,
        outcome: FAILED,
      });
    }
    observe({
      type: "attempt-finished",
      id: "web-1",
      runtime: "runc",
      attempt: 11,
      ok: true,
      durationMs: 5,
      nextAttemptAt: null,
      outcome: { ...FAILED, ok: true, failedStep: null, error: null },
    });
    assert.equal(lines.length, 5, lines.join(""));
    assert.match(
      lines[0]!,
      /^<4>gc: cleanup of web-1 failed at runtime-delete: runc delete exited with status 1 id=web-1 runtime=runc attempt=1 step=runtime-delete /,
    );
    for (const [i, n] of [2, 4, 8].entries()) {
      assert.match(
        lines[i + 1]!,
        new RegExp(`^<4>gc: cleanup of web-1 still failing after ${n} attempts at runtime-delete`),
      );
      assert.match(lines[i + 1]!, / step=runtime-delete /);
    }
    assert.match(lines[4]!, /^<6>gc: cleaned up web-1 after 11 attempts id=web-1 runtime=runc/);
  } finally {
    resetLogging();
  }
});
