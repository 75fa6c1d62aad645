import assert from "node:assert/strict";
import type { Logger } from "../log.ts";
import { startRetention, steadyWallClock, sweepIntervalMs } from "./retention.ts";
import { Store } from "../store/store.ts";
import { runToStopped, withKv, withKvPath } from "../store/_test_util.ts";
import { until } from "../../tests/support/poll.ts";

function recordingLog(lines: string[]): Logger {
  const say = (level: string) => (message: string, props?: Record<string, unknown>) =>
    lines.push(`${level} ${message} ${JSON.stringify(props ?? {})}`);
  return { info: say("info"), warn: say("warn") } as unknown as Logger;
}

Deno.test("sweepIntervalMs is a quarter of the retention, within 1 s and 1 h", () => {
  assert.equal(sweepIntervalMs(500), 1_000);
  assert.equal(sweepIntervalMs(8_000), 2_000);
  assert.equal(sweepIntervalMs(86_400_000), 3_600_000);
});

Deno.test("startRetention sweeps at once and then periodically, logs a failure and goes on", async () => {
  const cutoffs: number[] = [];
  const lines: string[] = [];
  const store = {
    forgetStopped: (before: number) => {
      cutoffs.push(before);
      return cutoffs.length === 2 ? Promise.reject(new Error("disk gone")) : Promise.resolve(3);
    },
  };
  const stop = startRetention({
    store,
    retentionMs: 4_000,
    log: recordingLog(lines),
    clock: () => 10_000,
  });
  try {
    assert.deepEqual(cutoffs, [6_000], "the first sweep runs at start");
    await new Promise((r) => setTimeout(r, 2_300)); // two intervals of 1 s
    assert.deepEqual(cutoffs, [6_000, 6_000, 6_000]);
    assert.ok(lines.some((l) => l.startsWith("info forgot {count}") && l.includes('"count":3')));
    assert.ok(lines.some((l) => l.startsWith("warn") && l.includes("disk gone")), lines.join("\n"));
  } finally {
    await stop();
  }
  const after = cutoffs.length;
  await new Promise((r) => setTimeout(r, 1_200));
  assert.equal(cutoffs.length, after, "no sweep after stop");
});

Deno.test("startRetention with a retention of 0 keeps every record", async () => {
  let calls = 0;
  const stop = startRetention({
    store: { forgetStopped: () => Promise.resolve(++calls) },
    retentionMs: 0,
    log: recordingLog([]),
  });
  await stop();
  assert.equal(calls, 0);
});

Deno.test("startRetention keeps fresh records when the wall clock is stepped forward a day, and forgets them once monotonic time says they are old", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let wall = 1_000_000_000;
      let mono = 50;
      const store = await Store.open(kv, { clock: () => wall });
      wall -= 10_000;
      await runToStopped(store, "old");
      wall += 10_000;
      await runToStopped(store, "fresh");
      const lines: string[] = [];
      const stopSweeps = startRetention({
        store,
        retentionMs: 4_000,
        log: recordingLog(lines),
        clock: () => wall,
        monotonic: () => mono,
      });
      try {
        await until("the first sweep", async () => (await store.get("old")) === null || null);
        assert.equal((await store.get("fresh"))?.state, "stopped");
        wall += 86_400_000; // stepped forward a day; one second passes
        mono += 1_000;
        await new Promise((r) => setTimeout(r, 1_300));
        assert.equal((await store.get("fresh"))?.state, "stopped", "a step is not age");
        assert.ok(lines.some((l) => l.startsWith("warn the wall clock moved")), lines.join("\n"));
        mono += 4_000; // now it is old by monotonic time too
        await until("fresh forgotten", async () => (await store.get("fresh")) === null || null);
      } finally {
        await stopSweeps();
      }
    })
  );
});

Deno.test("steadyWallClock: never ahead of monotonic time elapsed, follows a wall clock stepped back", () => {
  let wall = 10_000;
  let mono = 3;
  const clock = steadyWallClock(() => wall, () => mono);
  mono += 500;
  wall += 500;
  assert.equal(clock.now(), 10_500);
  wall += 1_000_000;
  assert.equal(clock.now(), 10_500);
  assert.equal(clock.stepped(), 1_000_000);
  wall = 2_000;
  assert.equal(clock.now(), 2_000);
  assert.equal(clock.stepped(), 2_000 - 10_500);
});
