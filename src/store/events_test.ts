import assert from "node:assert/strict";
import { EVENT_KINDS, isEvent, type ReaperEvent } from "./events.ts";
import { NotFoundError } from "./errors.ts";
import { Store } from "./store.ts";
import { exitWith, interceptCommits, registration, withKv, withKvPath } from "./_test_util.ts";

const STEP = { step: "runtime-delete", ok: false, exitCode: 1, stderrTail: "busy", durationMs: 4 };
const FAILED = {
  lastStep: "runtime-delete",
  lastError: "exit 1",
  stderrTail: "busy",
  steps: [STEP],
};

async function allEvents(store: Store): Promise<ReaperEvent[]> {
  return await store.eventsSince(0, 10_000);
}

Deno.test("the store writes each kind with its own state and detail", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv, { clock: () => 7_000 });
      await store.register(registration("c1"));
      await store.recordExit("c1", 100, 1000, exitWith(3));
      await store.enterGc("c1", { ...FAILED, attempts: 1, nextAttemptAt: 7_500, procState: "D" });
      await store.recordGcAttempt("c1", {
        ...FAILED,
        attempts: 2,
        nextAttemptAt: 8_000,
        procState: null,
      });
      await store.finishGc("c1", [{ ...STEP, ok: true, exitCode: 0, stderrTail: "" }]);
      await store.gcAdd({ ...registration("c2", 200), reason: "gc add" });
      await store.register(registration("c3", 300));
      await store.recordExit("c3", 300, 3000, exitWith(0));
      await store.markStopped("c3", "cleaned up");
      await store.recordRestore({ monitored: 4, exited: 1, resumed: 2, adopted: 1 });
      await store.register({ ...registration("c4", 400), pid: 0, startTime: 0 });
      await store.recordAdoption("c4", "found under the state root with no record");
      await store.register(registration("c5", 500));
      await store.recordExitLost(
        { id: "c5", pid: 500, startTime: 5000, exit: exitWith(2) },
        "no room for its exit",
      );

      const events = await allEvents(store);
      assert.deepEqual(
        events.map((e) => [e.kind, e.id, e.state]),
        [
          ["monitor", "c1", "running"],
          ["exit", "c1", "stopping"],
          ["gc", "c1", "gc"],
          ["gc-attempt", "c1", "gc"],
          ["gc-done", "c1", "stopped"],
          ["gc", "c2", "gc"],
          ["monitor", "c3", "running"],
          ["exit", "c3", "stopping"],
          ["stopped", "c3", "stopped"],
          ["restore", null, null],
          ["monitor", "c4", "running"],
          ["adopt", "c4", "running"],
          ["monitor", "c5", "running"],
          ["exit-lost", "c5", "running"],
        ],
      );
      assert.deepEqual(new Set(events.map((e) => e.kind)), new Set(EVENT_KINDS));
      assert.deepEqual(events.find(isEvent("exit-lost"))?.detail, {
        pid: 500,
        startTime: 5000,
        exit: exitWith(2),
        reason: "no room for its exit",
      });
      const processes = { pid: 100, startTime: 1000, ppid: 99, pStartTime: 990, runtime: "runc" };
      const [monitor, exit, entered, attempt, done, added] = events;
      assert.deepEqual(monitor?.detail, { ...processes, replaced: false });
      assert.deepEqual(exit?.detail, { pid: 100, startTime: 1000, exit: exitWith(3) });
      assert.deepEqual(entered?.detail, {
        from: "stopping",
        reason: "cleanup failed",
        ...processes,
        ...FAILED,
        attempts: 1,
        nextAttemptAt: 7_500,
        procState: "D",
      });
      assert.equal(attempt?.kind, "gc-attempt");
      assert.deepEqual([attempt.detail.attempts, attempt.detail.procState], [2, null]);
      assert.equal(done?.kind, "gc-done");
      assert.equal(done.detail.attempts, 2);
      assert.equal(added?.kind, "gc");
      assert.deepEqual(
        [added.detail.from, added.detail.reason, added.detail.pid, added.detail.attempts],
        [null, "gc add", 200, 0],
      );
      assert.deepEqual(events.find(isEvent("stopped"))?.detail, {
        from: "stopping",
        reason: "cleaned up",
      });
      assert.deepEqual(events.find(isEvent("restore")), {
        seq: 10,
        kind: "restore",
        id: null,
        at: 7_000,
        state: null,
        detail: { monitored: 4, exited: 1, resumed: 2, adopted: 1 },
      });
      assert.deepEqual(events.find(isEvent("adopt"))?.detail, {
        reason: "found under the state root with no record",
        stateDir: "/run/test/runc/c4",
      });
      await assert.rejects(store.recordAdoption("nobody", "x"), NotFoundError);
    })
  );
});

Deno.test("Store.recordRestore() warns instead of failing when the KV file cannot take it", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let fail = false;
      const flaky = interceptCommits(kv, () => {
        if (fail) return Promise.reject(new TypeError("database is locked"));
        return Promise.resolve();
      });
      const warnings: string[] = [];
      const store = await Store.open(flaky, { onWarning: (message) => warnings.push(message) });
      const seen: ReaperEvent[] = [];
      store.subscribe((e) => seen.push(e));
      fail = true;
      const counts = { monitored: 0, exited: 0, resumed: 0, adopted: 0 };
      assert.deepEqual(await store.recordRestore(counts), counts);
      assert.deepEqual(warnings, ["the restore event was not written"]);
      assert.deepEqual(await allEvents(store), []);
      fail = false;
      await store.recordRestore({ ...counts, monitored: 2 });
      assert.deepEqual(seen.map((e) => [e.kind, e.detail]), [["restore", {
        ...counts,
        monitored: 2,
      }]]);
    })
  );
});
