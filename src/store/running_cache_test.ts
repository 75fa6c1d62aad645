import assert from "node:assert/strict";
import type { ReaperEvent } from "./events.ts";
import { RunningCache } from "./running_cache.ts";
import { Store } from "./store.ts";
import { countingReads, exitWith, registration, withKv, withKvPath } from "./_test_util.ts";

async function exitEvents(store: Store, id: string): Promise<ReaperEvent[]> {
  return (await store.eventsSince(0, 1_000)).filter((e) => e.kind === "exit" && e.id === id);
}

Deno.test("RunningCache keeps running records only, each as committed", () => {
  const cache = new RunningCache();
  const record = {
    id: "c1",
    name: "c1",
    runtime: "runc",
    stateDir: "/run/test/runc/c1",
    mounts: ["/m"],
    paths: [],
    pid: 100,
    startTime: 1000,
    ppid: 99,
    pStartTime: 990,
    state: "running" as const,
    exit: null,
    createdAt: 1,
    updatedAt: 2,
  };
  cache.wrote("c1", record, "00000000000000010000");
  assert.deepEqual(cache.get("c1"), { record, versionstamp: "00000000000000010000" });
  cache.wrote("c1", { ...record, state: "stopping" }, "00000000000000020000");
  assert.equal(cache.get("c1"), null);
  cache.wrote("c1", record, "00000000000000030000");
  cache.drop("c1");
  assert.equal(cache.get("c1"), null);
  assert.equal(cache.size, 0);
});

Deno.test("RunningCache gives back every field of the records it keeps, and keeps each in a few bytes beyond its own values", () => {
  const cache = new RunningCache();
  const base = {
    id: "web-1",
    name: "web-1",
    runtime: "runc",
    stateDir: "/var/run/isulad/runc/web-1",
    mounts: [] as string[],
    paths: [] as string[],
    pid: 4242,
    startTime: 1_234_567,
    ppid: 4241,
    pStartTime: 1_234_560,
    state: "running" as const,
    exit: null,
    createdAt: 1_796_000_000_000,
    updatedAt: 1_796_000_000_123,
  };
  const records = [
    base,
    { ...base, id: "web-2", name: "frontend", stateDir: "/var/run/isulad/runc/web-2" },
    {
      ...base,
      id: "db",
      stateDir: "/srv/state/db",
      mounts: ["/var/lib/isulad/mnt/db/rootfs", '/m/with "quotes" and ,commas'],
      paths: ["/var/lib/isulad/db"],
      memoryCgroup: { dir: "/sys/fs/cgroup/memory/isulad/db", oomKills: 3 },
    },
    { ...base, id: "ghost", name: "ghost", pid: 0, startTime: 0, ppid: 0, pStartTime: 0 },
  ];
  for (const [i, record] of records.entries()) {
    cache.wrote(record.id, record, `0000000000000001000${i}`);
  }
  for (const [i, record] of records.entries()) {
    assert.deepEqual(cache.get(record.id), {
      record,
      versionstamp: `0000000000000001000${i}`,
    });
  }
  // What it keeps for an ordinary record is its values, not a copy of its JSON with every key.
  assert.ok(
    cache.keptBytes("web-1")! < JSON.stringify(base).length / 2,
    `${cache.keptBytes("web-1")} bytes kept for a record of ${JSON.stringify(base).length}`,
  );
  // More distinct state dir parents than it remembers: each record still comes back whole.
  for (let i = 0; i < 70; i++) {
    const record = { ...base, id: `p${i}`, name: `p${i}`, stateDir: `/state${i}/runc/p${i}` };
    cache.wrote(record.id, record, "00000000000000050000");
    assert.deepEqual(cache.get(record.id)?.record, record);
  }
  // A record of a shape it does not know (a field it would drop) is not kept: read instead.
  cache.wrote("odd", { ...base, id: "odd", extra: 1 } as typeof base, "00000000000000020000");
  assert.equal(cache.get("odd"), null);
  cache.wrote("exited", { ...base, id: "exited", exit: { code: 1 } } as never, "0000000000000003");
  assert.equal(cache.get("exited"), null);
  const { mounts: _, ...noMounts } = { ...base, id: "nomounts" };
  cache.wrote("nomounts", noMounts as typeof base, "00000000000000040000");
  assert.equal(cache.get("nomounts"), null);
});

Deno.test("Store.recordExits() commits the exit of a record it wrote without reading it, the whole record kept", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (raw) => {
      const { kv, count } = countingReads(raw);
      const store = await Store.open(kv, { clock: () => 7_000 });
      const { record } = await store.register({ ...registration("c1"), mounts: ["/m/c1"] });
      const before = count.lookups;
      const [result] = await store.recordExits([
        { id: "c1", pid: 100, startTime: 1000, exit: exitWith(3) },
      ]);
      assert.equal(count.lookups, before, "no read before the commit");
      assert.equal(result?.outcome, "recorded");
      const stored = await store.get("c1");
      assert.deepEqual(stored, { ...record, state: "stopping", exit: exitWith(3) });
      // Recorded once: the same report again reads, finds it stopping, and is ignored.
      const beforeAgain = count.lookups;
      const [again] = await store.recordExits([
        { id: "c1", pid: 100, startTime: 1000, exit: exitWith(3) },
      ]);
      assert.equal(again?.outcome, "ignored");
      assert.ok(count.lookups > beforeAgain, "a report the cache cannot vouch for is read");
      assert.equal((await exitEvents(store, "c1")).length, 1);
    });
  });
});

Deno.test("Store.recordExits() ignores a stale report on what the file says, never on memory alone", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1"));
      const [stale] = await store.recordExits([
        { id: "c1", pid: 100, startTime: 999, exit: exitWith(1) },
      ]);
      assert.equal(stale?.outcome, "ignored");
      assert.equal((await store.get("c1"))?.state, "running");
      const [real] = await store.recordExits([
        { id: "c1", pid: 100, startTime: 1000, exit: exitWith(2) },
      ]);
      assert.equal(real?.outcome, "recorded");
    });
  });
});

Deno.test("Store.recordExits() from a record changed by another writer falls back to a read: the old run's exit is ignored, the new run's recorded", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1", 100));
      await store.register(registration("c2", 300));
      // Another handle on the same file ends c1's run and starts a new one under another pid.
      await withKv(path, async (otherKv) => {
        const other = await Store.open(otherKv);
        assert.equal(await other.recordExit("c1", 100, 1000, exitWith(0)), true);
        await other.markStopped("c1");
        await other.register(registration("c1", 200));
      });
      const results = await store.recordExits([
        { id: "c1", pid: 100, startTime: 1000, exit: exitWith(9) },
        { id: "c2", pid: 300, startTime: 3000, exit: exitWith(4) },
      ]);
      assert.deepEqual(results.map((r) => r.outcome), ["ignored", "recorded"]);
      const c1 = await store.get("c1");
      assert.deepEqual([c1?.state, c1?.pid], ["running", 200]);
      assert.equal((await store.get("c2"))?.exit?.code, 4);
      const [fresh] = await store.recordExits([
        { id: "c1", pid: 200, startTime: 2000, exit: exitWith(5) },
      ]);
      assert.equal(fresh?.outcome, "recorded");
      const exits = await exitEvents(store, "c1");
      const codes = exits.map((e) => e.kind === "exit" ? e.detail.exit.code : null);
      assert.deepEqual(codes, [0, 5], "each run's exit once");
    });
  });
});
