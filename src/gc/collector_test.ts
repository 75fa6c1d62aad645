import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import type { ContainerRecord, StepResult } from "../types.ts";
import { StoreUnavailableError } from "../store/errors.ts";
import { type GcAddInput, Store } from "../store/store.ts";
import { isEvent } from "../store/events.ts";
import { ConflictError } from "../store/errors.ts";
import {
  exitWith,
  interceptCommits,
  registration,
  withKv,
  withKvPath,
} from "../store/_test_util.ts";
import { backoffBounds } from "./backoff.ts";
import type { Cleaner, CleanupOutcome } from "./cleaner.ts";
import { Collector, type CollectorEvent, type CollectorOptions } from "./collector.ts";

const OK: CleanupOutcome = {
  ok: true,
  steps: [{ step: "runtime-delete", ok: true, exitCode: 0, stderrTail: "", durationMs: 1 }],
  failedStep: null,
  error: null,
  stderrTail: "",
  procState: null,
};

const FAILED: CleanupOutcome = {
  ok: false,
  steps: [{ step: "runtime-delete", ok: false, exitCode: 1, stderrTail: "busy", durationMs: 1 }],
  failedStep: "runtime-delete",
  error: "runc delete exited with status 1",
  stderrTail: "device or resource busy",
  procState: "D",
};

/** Fails each container's first `failures` attempts, then succeeds; counts calls. */
class FlakyCleaner implements Cleaner {
  readonly calls = new Map<string, number>();
  constructor(readonly failures: number) {}
  clean(record: ContainerRecord): Promise<CleanupOutcome> {
    const n = (this.calls.get(record.id) ?? 0) + 1;
    this.calls.set(record.id, n);
    return Promise.resolve(n <= this.failures ? FAILED : OK);
  }
}

/** Holds every cleanup until `release()`; counts the cleanups running now and at the peak. */
class GatedCleaner implements Cleaner {
  running = 0;
  peak = 0;
  release: () => void = () => {};
  readonly #gate = new Promise<void>((resolve) => this.release = resolve);
  async clean(): Promise<CleanupOutcome> {
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    await this.#gate;
    this.running--;
    return OK;
  }
}

/** Keeps what the collector reported, with the monotonic time it arrived. */
class Recorder {
  readonly events: { event: CollectorEvent; t: number }[] = [];
  readonly observe = (event: CollectorEvent): void => {
    this.events.push({ event, t: performance.now() });
  };
  of<T extends CollectorEvent["type"]>(
    type: T,
    id?: string,
  ): { event: Extract<CollectorEvent, { type: T }>; t: number }[] {
    return this.events.filter((e) =>
      e.event.type === type && (id === undefined || e.event.id === id)
    )
      .map((e) => e as { event: Extract<CollectorEvent, { type: T }>; t: number });
  }
}

/** Runs `fn` with a store on a KV file of its own, closed and removed after. */
function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  return withKvPath((path) => withKv(path, async (kv) => fn(await Store.open(kv))));
}

/**
 * Runs `fn` with a fake clock and a store on a KV file of its own that takes its time from that
 * clock; `wrap` may put a layer under the store (commits that fail on demand).
 */
function withClockedStore(
  fn: (store: Store, clock: FakeTimers.Clock) => Promise<void>,
  wrap: (kv: Deno.Kv) => Deno.Kv = (kv) => kv,
): Promise<void> {
  return withKvPath((path) =>
    withKv(path, async (kv) => {
      const clock = FakeTimers.createClock(1_700_000_000_000);
      await fn(await Store.open(wrap(kv), { clock: () => clock.now }), clock);
    })
  );
}

/** Resolves once `predicate` holds, polling with a real timer; rejects after `timeoutMs`. */
async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function gcInput(id: string, extra: Partial<GcAddInput> = {}): GcAddInput {
  return {
    id,
    runtime: "runc",
    stateDir: `/run/test/runc/${id}`,
    pid: 0,
    startTime: 0,
    ppid: 0,
    pStartTime: 0,
    ...extra,
  };
}

/** Collector options driven by a sinon fake clock: one clock for wall time, heap and timers. */
/** Ticks to 1 ms before `dueInMs` (no attempt may start), then to it (one starts). */
function tickToDue(clock: FakeTimers.Clock, gc: Collector, dueInMs: number, what: string): void {
  clock.tick(dueInMs - 1);
  assert.equal(gc.stats().running, 0, `${what} must not start early`);
  clock.tick(1);
  assert.equal(gc.stats().running, 1, `${what} starts when due`);
}

function fakeTimed(clock: FakeTimers.Clock): Partial<CollectorOptions> {
  return {
    clock: () => clock.now,
    monotonic: () => clock.now,
    timers: {
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (handle) => clock.clearTimeout(handle as FakeTimers.TimerId),
    },
  };
}

Deno.test("Collector retries a failing cleanup on the backoff schedule, then stops it", async () => {
  await withClockedStore(async (store, clock) => {
    const recorder = new Recorder();
    const gc = new Collector({
      store,
      cleaner: new FlakyCleaner(3),
      backoffBaseMs: 500,
      backoffMaxMs: 1_000,
      jitter: "equal",
      random: () => 0.5,
      onEvent: recorder.observe,
      ...fakeTimed(clock),
    });
    await gc.add(gcInput("c1"));
    gc.start();
    assert.equal(clock.countTimers(), 1);
    clock.tick(0);
    assert.equal(gc.stats().running, 1);

    // Equal jitter at 0.5 is 3/4 of the ceiling: 500 → 375, 1 000 → 750, capped 1 000 → 750.
    const expected = [375, 750, 750];
    for (const [i, delay] of expected.entries()) {
      await waitFor(() => gc.stats().running === 0, `attempt ${i + 1}`);
      const entry = await store.getGc("c1");
      assert.equal(entry?.attempts, i + 1, "each failure is counted durably");
      assert.equal(entry?.nextAttemptAt, clock.now + delay);
      assert.equal(entry?.lastStep, "runtime-delete");
      assert.equal(entry?.procState, "D");
      assert.equal(gc.isInProgress("c1"), true);
      assert.equal(clock.countTimers(), 1, "one timer, armed for the next due time");
      tickToDue(clock, gc, delay, `attempt ${i + 2}`);
    }
    await waitFor(() => gc.stats().running === 0, "the last attempt");
    assert.equal((await store.get("c1"))?.state, "stopped");
    assert.equal(await store.isInGc("c1"), false);
    assert.equal(gc.isInProgress("c1"), false);
    assert.equal(clock.countTimers(), 0);
    assert.deepEqual(recorder.of("attempt-started").map((e) => e.event.attempt), [1, 2, 3, 4]);
    assert.deepEqual(recorder.of("attempt-finished").map((e) => e.event.ok), [
      false,
      false,
      false,
      true,
    ]);
    assert.equal(await gc.stop(), true);
  });
});

Deno.test("Collector spaces real retries within the jittered backoff bounds", async () => {
  await withStore(async (store) => {
    const recorder = new Recorder();
    const policy = { baseMs: 40, maxMs: 100, jitter: "equal" as const };
    const gc = new Collector({
      store,
      cleaner: new FlakyCleaner(3),
      backoffBaseMs: policy.baseMs,
      backoffMaxMs: policy.maxMs,
      jitter: policy.jitter,
      onEvent: recorder.observe,
    });
    try {
      gc.start();
      await gc.add(gcInput("c1"));
      await waitFor(() => recorder.of("attempt-finished").some((e) => e.event.ok), "success");
      const starts = recorder.of("attempt-started").map((e) => e.t);
      assert.equal(starts.length, 4);
      for (let failures = 1; failures <= 3; failures++) {
        const gap = starts[failures]! - starts[failures - 1]!;
        const { min, max } = backoffBounds(failures, policy);
        assert.ok(gap >= min - 2, `gap ${failures} = ${gap} ms, below ${min}`);
        // Generous above: the gap also holds the cleanup, a KV commit and timer lateness.
        assert.ok(gap <= max + 500, `gap ${failures} = ${gap} ms, above ${max}`);
      }
      const events = await store.eventsSince(0);
      const attempts = events.filter(isEvent("gc-attempt"));
      assert.deepEqual(attempts.map((e) => e.detail.attempts), [1, 2, 3]);
      for (const e of attempts) {
        const { min, max } = backoffBounds(e.detail.attempts as number, policy);
        const wait = (e.detail.nextAttemptAt as number) - e.at;
        assert.ok(wait >= min - 50 && wait <= max, `stored wait ${wait} outside ${min}..${max}`);
      }
      const done = events.at(-1);
      assert.equal(done?.kind, "gc-done");
      assert.equal(done.detail.attempts, 3);
      assert.equal((await store.get("c1"))?.state, "stopped");
    } finally {
      await gc.stop();
    }
  });
});

Deno.test("Collector carries on after a restart with the attempts it had counted", async () => {
  await withKvPath(async (path) => {
    const ids = ["a", "b", "c"];
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const recorder = new Recorder();
      const gc = new Collector({
        store,
        cleaner: new FlakyCleaner(Infinity),
        backoffBaseMs: 10,
        backoffMaxMs: 20,
        onEvent: recorder.observe,
      });
      for (const id of ids) await gc.add(gcInput(id));
      gc.start();
      await waitFor(
        () => ids.every((id) => recorder.of("attempt-finished", id).length >= 2),
        "two failed attempts each",
      );
      assert.equal(await gc.stop(), true);
    });
    // The daemon is gone; a new one opens the same file.
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const stored = new Map((await store.listGc()).map((e) => [e.id, e.attempts]));
      assert.deepEqual([...stored.keys()], ids);
      for (const attempts of stored.values()) assert.ok(attempts >= 2);

      const recorder = new Recorder();
      const cleaner = new FlakyCleaner(0);
      const gc = new Collector({
        store,
        cleaner,
        backoffBaseMs: 10,
        backoffMaxMs: 20,
        onEvent: recorder.observe,
      });
      assert.deepEqual(await gc.restore(), { gc: 3, stopping: 0 });
      for (const id of ids) assert.equal(gc.isInProgress(id), true);
      gc.start();
      await waitFor(() => recorder.of("attempt-finished").length === 3, "every entry finishes");
      for (const id of ids) {
        const [started] = recorder.of("attempt-started", id);
        assert.equal(started?.event.attempt, stored.get(id)! + 1, "attempts continue the count");
        assert.equal((await store.get(id))?.state, "stopped");
        assert.equal(gc.isInProgress(id), false);
        assert.equal(cleaner.calls.get(id), 1);
      }
      assert.deepEqual(await store.listGc(), []);
      assert.equal(await gc.stop(), true);
    });
  });
});

Deno.test("Collector: a cleanup that never settles holds one slot and delays nobody", async () => {
  await withStore(async (store) => {
    const recorder = new Recorder();
    const cleaner: Cleaner = {
      clean: (record) =>
        record.id === "stuck" ? new Promise<CleanupOutcome>(() => {}) : Promise.resolve(OK),
    };
    const gc = new Collector({ store, cleaner, concurrency: 2, onEvent: recorder.observe });
    await gc.add(gcInput("stuck"));
    gc.start();
    await waitFor(() => gc.stats().running === 1, "the stuck cleanup to start");
    const others = Array.from({ length: 20 }, (_, i) => `other${i}`);
    const t0 = performance.now();
    for (const id of others) await gc.add(gcInput(id));
    await waitFor(() => recorder.of("attempt-finished").length === others.length, "the others");
    assert.ok(performance.now() - t0 < 5_000);
    for (const id of others) assert.equal((await store.get(id))?.state, "stopped");
    assert.equal(gc.isInProgress("stuck"), true);
    assert.equal(gc.stats().running, 1);
    assert.equal(
      await gc.stop(20),
      false,
      "stop() gives up on the stuck cleanup after its bound",
    );
  });
});

Deno.test("Collector runs at most `concurrency` cleanups at once", async () => {
  await withStore(async (store) => {
    const cleaner = new GatedCleaner();
    const gc = new Collector({ store, cleaner, concurrency: 4 });
    for (let i = 0; i < 20; i++) await gc.add(gcInput(`c${i}`));
    gc.start();
    await waitFor(() => cleaner.running === 4, "four cleanups");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(gc.stats().running, 4);
    assert.equal(gc.stats().queued, 16);
    cleaner.release();
    await waitFor(() => gc.stats().running + gc.stats().queued === 0, "the rest");
    assert.equal(cleaner.peak, 4);
    assert.equal((await store.countByState()).stopped, 20);
    assert.equal(await gc.stop(), true);
  });
});

Deno.test("Collector drains 1,000 entries quickly", async () => {
  await withStore(async (store) => {
    const ids = Array.from({ length: 1_000 }, (_, i) => `c${i}`);
    await Promise.all(ids.map((id) => store.gcAdd(gcInput(id))));
    let done = 0;
    const gc = new Collector({
      store,
      cleaner: { clean: () => Promise.resolve(OK) },
      onEvent: (e) => {
        if (e.type === "attempt-finished" && e.ok) done++;
      },
    });
    assert.deepEqual(await gc.restore(), { gc: 1_000, stopping: 0 });
    const t0 = performance.now();
    gc.start();
    await waitFor(() => done === 1_000, "1,000 entries", 30_000);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 15_000, `drained 1,000 entries in ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(await store.countByState(), {
      running: 0,
      stopping: 0,
      gc: 0,
      stopped: 1_000,
    });
    assert.deepEqual(await store.listGc(), []);
    assert.equal(await gc.stop(), true);
  });
});

Deno.test("Collector arms one timer for many entries and runs each when due", async () => {
  await withClockedStore(async (store, clock) => {
    for (let i = 0; i < 100; i++) {
      await store.gcAdd(gcInput(`c${i}`, { nextAttemptAt: clock.now + 1_000 + (99 - i) * 10 }));
    }
    const gc = new Collector({ store, cleaner: new FlakyCleaner(0), ...fakeTimed(clock) });
    await gc.restore();
    assert.equal(clock.countTimers(), 0, "no timer before start()");
    gc.start();
    assert.equal(clock.countTimers(), 1);
    tickToDue(clock, gc, 1_000, "the earliest (c99), alone,");
    assert.equal(gc.isInProgress("c99"), true);
    await waitFor(() => gc.stats().running === 0, "c99");
    assert.equal((await store.get("c99"))?.state, "stopped");
    assert.equal((await store.get("c98"))?.state, "gc");
    assert.equal(clock.countTimers(), 1);
    assert.equal(await gc.stop(), true);
    assert.equal(clock.countTimers(), 0, "stop() clears the timer");
  });
});

Deno.test("Collector waits no longer than the cap when the wall clock stepped back", async () => {
  await withClockedStore(async (store, clock) => {
    await store.gcAdd(gcInput("c1", { nextAttemptAt: clock.now + 86_400_000 }));
    const gc = new Collector({
      store,
      cleaner: new FlakyCleaner(0),
      backoffMaxMs: 2_000,
      ...fakeTimed(clock),
    });
    await gc.restore();
    gc.start();
    tickToDue(clock, gc, 2_000, "the capped attempt");
    await waitFor(() => gc.stats().running === 0, "c1");
    assert.equal((await store.get("c1"))?.state, "stopped");
    await gc.stop();
  });
});

/** Registers `id` and records its exit, as the daemon does; returns the record as written. */
async function exited(store: Store, id: string): Promise<ContainerRecord> {
  await store.register(registration(id));
  const [result] = await store.recordExits([
    { id, pid: 100, startTime: 1000, exit: exitWith(137) },
  ]);
  assert.equal(result?.outcome, "recorded");
  return (result as { record: ContainerRecord }).record;
}

Deno.test("Collector.takeExited() runs the first attempt at once and moves the container to stopped", async () => {
  await withClockedStore(async (store, clock) => {
    const recorder = new Recorder();
    const cleaner = new FlakyCleaner(0);
    const gc = new Collector({ store, cleaner, onEvent: recorder.observe, ...fakeTimed(clock) });
    gc.start();
    gc.takeExited(await exited(store, "c1"));
    assert.equal(gc.isInProgress("c1"), true);
    assert.deepEqual([gc.stats().stopping, gc.stats().entries], [1, 0]);
    assert.equal((await gc.status("c1"))?.entry.attempts, 0, "in progress while stopping");
    assert.deepEqual((await gc.list()).map((v) => [v.record.id, v.record.state]), [
      ["c1", "stopping"],
    ]);
    clock.tick(0);
    await waitFor(() => gc.stats().running === 0, "the first attempt");
    assert.equal((await store.get("c1"))?.state, "stopped");
    assert.equal(cleaner.calls.get("c1"), 1);
    assert.equal(recorder.of("attempt-finished")[0]?.event.attempt, 1);
    assert.equal(gc.isInProgress("c1"), false);
    assert.equal(await gc.status("c1"), null);
    assert.deepEqual(await gc.list(), []);
    assert.equal(gc.ownerOf("/run/test/runc/c1"), null);
    const kinds = (await store.eventsSince(0)).map((e) => e.kind);
    assert.deepEqual(kinds, ["monitor", "exit", "stopped"]);
    await gc.stop();
  });
});

Deno.test("Collector.takeExited(): the first attempt starts within the same turn, not after a timer", async () => {
  await withStore(async (store) => {
    const cleaner = new FlakyCleaner(0);
    const gc = new Collector({ store, cleaner });
    gc.start();
    const record = await exited(store, "c1");
    let timerTurn = false;
    setTimeout(() => timerTurn = true, 0);
    gc.takeExited(record);
    // Microtasks only: a zero timer would wait for the event loop's next turn (4 ms nested).
    for (let i = 0; i < 10 && !cleaner.calls.has("c1"); i++) await Promise.resolve();
    assert.equal(cleaner.calls.get("c1"), 1);
    assert.equal(timerTurn, false);
    await waitFor(() => gc.stats().running === 0, "c1");
    await gc.stop();
  });
});

Deno.test("Collector.takeExited(): a failed first attempt is attempt 1 in GC, retried after one backoff", async () => {
  await withClockedStore(async (store, clock) => {
    const recorder = new Recorder();
    const gc = new Collector({
      store,
      cleaner: new FlakyCleaner(1),
      random: () => 0,
      onEvent: recorder.observe,
      ...fakeTimed(clock),
    });
    gc.start();
    gc.takeExited(await exited(store, "c1"));
    clock.tick(0);
    await waitFor(() => gc.stats().running === 0, "the first attempt");
    const exitedAt = clock.now;
    assert.deepEqual(await store.getGc("c1"), {
      id: "c1",
      addedAt: exitedAt,
      attempts: 1,
      nextAttemptAt: exitedAt + 250,
      lastStep: "runtime-delete",
      lastError: "runc delete exited with status 1",
      stderrTail: "device or resource busy",
      procState: "D",
    });
    const gcEvent = (await store.eventsSince(0)).at(-1);
    assert.equal(gcEvent?.kind, "gc");
    assert.deepEqual(gcEvent?.detail.steps, FAILED.steps);
    assert.deepEqual(gc.stats(), {
      entries: 1,
      stopping: 0,
      dState: 1,
      byProcState: { none: 0, D: 1 },
      queued: 1,
      running: 0,
      concurrency: 8,
      started: true,
    });
    tickToDue(clock, gc, 250, "the second attempt");
    await waitFor(() => gc.stats().running === 0, "c1");
    assert.deepEqual(recorder.of("attempt-started").map((e) => e.event.attempt), [1, 2]);
    assert.equal((await store.get("c1"))?.state, "stopped");
    assert.equal(gc.stats().entries, 0);
    await gc.stop();
  });
});

Deno.test("Collector.takeExited(): a cleaner that throws leaves the container in GC, retried with backoff", async () => {
  await withClockedStore(async (store, clock) => {
    const recorder = new Recorder();
    let calls = 0;
    const gc = new Collector({
      store,
      cleaner: {
        clean: () => {
          calls++;
          return Promise.reject(new Error("plan for runtime kata is missing"));
        },
      },
      backoffBaseMs: 500,
      backoffMaxMs: 4_000,
      random: () => 0.5,
      onEvent: recorder.observe,
      ...fakeTimed(clock),
    });
    gc.start();
    gc.takeExited(await exited(store, "c1"));
    clock.tick(0);
    await waitFor(() => recorder.of("attempt-finished").length === 1, "the first attempt");
    assert.equal((await store.get("c1"))?.state, "gc");
    // Equal jitter at 0.5 is 3/4 of the ceiling: 500 → 375, 1 000 → 750, 2 000 → 1 500.
    for (const [i, delay] of [375, 750, 1_500].entries()) {
      const entry = await store.getGc("c1");
      assert.equal(entry?.attempts, i + 1);
      assert.equal(entry?.lastError, "plan for runtime kata is missing");
      assert.equal(entry?.nextAttemptAt, clock.now + delay);
      tickToDue(clock, gc, delay, `attempt ${i + 2}`);
      await waitFor(() => recorder.of("attempt-finished").length === i + 2, `attempt ${i + 2}`);
    }
    assert.equal(calls, 4);
    assert.equal((await store.get("c1"))?.state, "gc");
    assert.equal(gc.isInProgress("c1"), true);
    await gc.stop();
  });
});

Deno.test("Collector: first attempts and retries share one concurrency limit", async () => {
  await withStore(async (store) => {
    const cleaner = new GatedCleaner();
    const gc = new Collector({ store, cleaner, concurrency: 3 });
    for (let i = 0; i < 5; i++) await gc.add(gcInput(`g${i}`));
    gc.start();
    for (let i = 0; i < 5; i++) gc.takeExited(await exited(store, `e${i}`));
    await waitFor(() => cleaner.running === 3, "three cleanups");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(gc.stats().running, 3);
    cleaner.release();
    await waitFor(() => gc.stats().running + gc.stats().queued === 0, "the rest");
    assert.equal(cleaner.peak, 3);
    assert.equal((await store.countByState()).stopped, 10);
    await gc.stop();
  });
});

Deno.test("Collector.restore() takes containers left stopping, and waits for yieldTo before each attempt", async () => {
  await withStore(async (store) => {
    await exited(store, "s1");
    await store.gcAdd(gcInput("g1"));
    let open = () => {};
    const recording = new Promise<void>((resolve) => open = resolve);
    const cleaner = new FlakyCleaner(0);
    const gc = new Collector({ store, cleaner, yieldTo: () => recording });
    assert.deepEqual(await gc.restore(), { gc: 1, stopping: 1 });
    assert.equal(gc.ownerOf("/run/test/runc/s1/"), "s1");
    assert.equal(gc.ownerOf("/run/test/runc/g1"), "g1");
    assert.equal(gc.ownerOf("/run/test/runc/g1/inside"), "g1", "removed with it");
    assert.equal(gc.ownerOf("/run/test/runc"), null);
    assert.equal(gc.ownerOf("/run/test/runc/g10"), null);
    gc.start();
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(cleaner.calls.size, 0, "no cleanup while exits are being recorded");
    open();
    await waitFor(() => gc.stats().running + gc.stats().queued === 0, "both");
    assert.equal((await store.get("s1"))?.state, "stopped");
    assert.equal((await store.get("g1"))?.state, "stopped");
    assert.equal(gc.ownerOf("/run/test/runc/s1"), null);
    await gc.stop();
  });
});

Deno.test("Collector: a gc add during a first attempt is refused, and that attempt stays the only one", async () => {
  await withStore(async (store) => {
    const seen: number[] = [];
    let release = () => {};
    const gate = new Promise<void>((resolve) => release = resolve);
    const cleaner: Cleaner = {
      async clean(record) {
        seen.push(record.pid);
        if (seen.length === 1) await gate;
        return OK;
      },
    };
    const gc = new Collector({ store, cleaner });
    gc.start();
    gc.takeExited(await exited(store, "c1"));
    await waitFor(() => seen.length === 1, "the first attempt");
    await assert.rejects(gc.add(gcInput("c1", { pid: 4242, startTime: 77 })), ConflictError);
    release();
    await waitFor(() => gc.stats().running + gc.stats().queued === 0, "c1");
    assert.deepEqual(seen, [100]);
    const kinds = (await store.eventsSince(0)).map((e) => e.kind);
    assert.deepEqual(kinds, ["monitor", "exit", "stopped"]);
    await gc.stop();
  });
});

Deno.test("Collector.add() is idempotent per id", async () => {
  await withStore(async (store) => {
    const gc = new Collector({ store, cleaner: new FlakyCleaner(0) });
    assert.equal((await gc.add(gcInput("c1"))).added, true);
    assert.equal((await gc.add(gcInput("c1"))).added, false);
    assert.equal(gc.stats().queued, 1);
    assert.equal(gc.isInProgress("c1"), true);
    assert.equal(gc.isInProgress("c2"), false);
    assert.deepEqual((await gc.list()).map((v) => v.entry.id), ["c1"]);
    assert.equal((await gc.status("c1"))?.record.state, "gc");
    await gc.stop();
  });
});

Deno.test("Collector retries the store write when the KV file fails, then finishes", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let failures = 0;
      const flaky = interceptCommits(kv, () => {
        if (failures === 0) return Promise.resolve();
        failures--;
        return Promise.reject(new Error("disk I/O error: no space left on device"));
      });
      const store = await Store.open(flaky);
      await store.gcAdd(gcInput("c1"));
      const recorder = new Recorder();
      const cleaner = new FlakyCleaner(0);
      const gc = new Collector({
        store,
        cleaner,
        backoffBaseMs: 5,
        backoffMaxMs: 10,
        onEvent: recorder.observe,
      });
      failures = 2;
      await gc.restore();
      gc.start();
      // Every run of the cleaner is an attempt reported, the two whose outcome was lost too.
      await waitFor(() => recorder.of("attempt-finished").length === 3, "the third try");
      assert.deepEqual(recorder.of("attempt-finished").map((e) => e.event.ok), [true, true, true]);
      assert.equal(recorder.of("store-error").length, 2);
      assert.equal(cleaner.calls.get("c1"), 3, "cleanup is rerun (it is idempotent)");
      assert.equal((await store.get("c1"))?.state, "stopped");
      await gc.stop();
    })
  );
});

/** The four ways an attempt's result reaches the store, each of which the KV file may refuse. */
const UNWRITTEN_RESULTS = [
  { first: true, outcome: OK, write: "markStopped" },
  { first: true, outcome: FAILED, write: "enterGc" },
  { first: false, outcome: OK, write: "finishGc" },
  { first: false, outcome: FAILED, write: "recordGcAttempt" },
] as const;

for (const { first, outcome, write } of UNWRITTEN_RESULTS) {
  const which = first ? "a first attempt" : "a retry";
  const cleanup = outcome.ok ? "succeeded" : "failed";
  Deno.test(`Collector: ${which} whose cleanup ${cleanup} but whose ${write} the store refuses is made again with backoff until written`, async () => {
    let full = false;
    const fillable = (kv: Deno.Kv) =>
      interceptCommits(
        kv,
        () => full ? Promise.reject(new Error("database or disk is full")) : Promise.resolve(),
      );
    await withClockedStore(async (store, clock) => {
      const recorder = new Recorder();
      let next = outcome;
      let calls = 0;
      const gc = new Collector({
        store,
        cleaner: {
          clean: () => {
            calls++;
            return Promise.resolve(next);
          },
        },
        backoffBaseMs: 500,
        backoffMaxMs: 4_000,
        random: () => 0.5,
        onEvent: recorder.observe,
        ...fakeTimed(clock),
      });
      if (first) {
        gc.start();
        gc.takeExited(await exited(store, "c1"));
      } else {
        await store.gcAdd(gcInput("c1"));
        await gc.restore();
        gc.start();
      }
      const before = (await store.eventsSince(0)).map((e) => e.kind);
      full = true;
      clock.tick(0);
      // Equal jitter at 0.5 is 3/4 of the ceiling: 500 → 375, 1 000 → 750, 2 000 → 1 500.
      for (const [i, delay] of [375, 750, 1_500].entries()) {
        await waitFor(() => recorder.of("store-error").length === i + 1, `store error ${i + 1}`);
        await waitFor(() => gc.stats().running === 0, `attempt ${i + 1}`);
        assert.deepEqual(
          recorder.events.slice(-2).map((e) => e.event.type),
          ["attempt-finished", "store-error"],
          "the attempt is reported, then that its result was not written",
        );
        assert.equal(recorder.of("store-error").at(-1)?.event.retryInMs, delay);
        const status = await gc.status("c1");
        assert.equal(status?.record.state, first ? "stopping" : "gc", "still in progress");
        assert.equal(status?.entry.attempts, 0, "nothing half-written");
        assert.equal(gc.isInProgress("c1"), true);
        assert.equal(gc.ownerOf("/run/test/runc/c1"), "c1", "its state dir stays owned");
        tickToDue(clock, gc, delay, `attempt ${i + 2}`);
      }
      await waitFor(() => recorder.of("store-error").length === 4, "store error 4");
      await waitFor(() => gc.stats().running === 0, "attempt 4");
      full = false;
      next = OK;
      tickToDue(clock, gc, 3_000, "the attempt once the store takes writes");
      await waitFor(() => gc.stats().running === 0, "the last attempt");

      assert.equal((await store.get("c1"))?.state, "stopped");
      assert.equal(await gc.status("c1"), null);
      assert.equal(gc.isInProgress("c1"), false);
      assert.equal(gc.ownerOf("/run/test/runc/c1"), null);
      assert.equal(calls, 5, "the cleanup is made again each time (it is idempotent)");
      assert.deepEqual(
        recorder.of("attempt-started").map((e) => e.event.attempt),
        [1, 1, 1, 1, 1],
        "an attempt whose result was not written is not counted",
      );
      const after = (await store.eventsSince(0)).map((e) => e.kind).slice(before.length);
      assert.deepEqual(after, [first ? "stopped" : "gc-done"]);
      assert.equal(await gc.stop(), true);
    }, fillable);
  });
}

Deno.test("Collector: another container's write does not reset the backoff of one whose result the store keeps refusing", async () => {
  await withClockedStore(async (store, clock) => {
    // The store refuses c1's result only, as under a writer that keeps changing its record.
    const refusing = new Proxy(store, {
      get(target, prop) {
        if (prop === "finishGc") {
          return (id: string, steps: StepResult[]) =>
            id === "c1"
              ? Promise.reject(new StoreUnavailableError("finish gc: the record kept changing"))
              : target.finishGc(id, steps);
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const recorder = new Recorder();
    const gc = new Collector({
      store: refusing,
      cleaner: new FlakyCleaner(0),
      backoffBaseMs: 500,
      backoffMaxMs: 4_000,
      random: () => 0.5,
      onEvent: recorder.observe,
      ...fakeTimed(clock),
    });
    await gc.add(gcInput("c1"));
    gc.start();
    clock.tick(0);
    await waitFor(() => recorder.of("store-error").length === 1, "c1's first store error");
    await gc.add(gcInput("c2"));
    clock.tick(0);
    await waitFor(() => gc.stats().running === 0, "c2");
    assert.equal((await store.get("c2"))?.state, "stopped");
    // Equal jitter at 0.5 is 3/4 of the ceiling: 500 → 375, 1 000 → 750, 2 000 → 1 500.
    for (const [i, delay] of [375, 750].entries()) {
      tickToDue(clock, gc, delay, `c1's attempt ${i + 2}`);
      await waitFor(() => recorder.of("store-error").length === i + 2, `store error ${i + 2}`);
    }
    assert.deepEqual(recorder.of("store-error").map((e) => e.event.retryInMs), [375, 750, 1_500]);
    assert.equal((await store.get("c1"))?.state, "gc");
    assert.equal(gc.isInProgress("c1"), true);
    assert.equal(await gc.stop(), true);
  });
});

Deno.test("Collector forgets a container that left GC another way", async () => {
  await withStore(async (store) => {
    const recorder = new Recorder();
    const cleaner = new FlakyCleaner(0);
    const gc = new Collector({ store, cleaner, onEvent: recorder.observe });
    await gc.add(gcInput("c1"));
    await store.markStopped("c1", "operator");
    gc.start();
    await waitFor(() => recorder.of("dropped").length === 1, "the drop");
    assert.equal(cleaner.calls.size, 0);
    assert.equal(gc.isInProgress("c1"), false);
    await gc.stop();
  });
});

Deno.test("Collector counts a cleaner that throws as a failed attempt", async () => {
  await withStore(async (store) => {
    const recorder = new Recorder();
    const gc = new Collector({
      store,
      cleaner: { clean: () => Promise.reject(new Error("plan for runtime kata is missing")) },
      backoffBaseMs: 1_000,
      onEvent: recorder.observe,
    });
    await gc.add(gcInput("c1"));
    gc.start();
    await waitFor(() => recorder.of("attempt-finished").length === 1, "the attempt");
    await gc.stop();
    const entry = await store.getGc("c1");
    assert.equal(entry?.attempts, 1);
    assert.equal(entry?.lastError, "plan for runtime kata is missing");
  });
});
