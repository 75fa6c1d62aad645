import assert from "node:assert/strict";
import { FakeApi } from "./_fake_api.ts";
import { ApiError } from "./api.ts";
import { prioritizeReads } from "./read_priority.ts";

function monitorBody(id: string) {
  return { id, runtime: "runc", stateDir: `/var/run/isulad/runc/${id}`, pid: 42, ppid: 41 };
}

Deno.test("prioritizeReads(): ps callers at the same version share one store read and one array", async () => {
  const api = new FakeApi();
  await api.monitor(monitorBody("a"));
  let reads = 0;
  const list = api.list.bind(api);
  api.list = (page) => {
    reads++;
    return list(page);
  };
  const reader = prioritizeReads(api, { version: () => api.log.length });
  const [one, two] = await Promise.all([reader.list(), reader.list()]);
  assert.equal(one, two);
  assert.equal(reads, 1);
  assert.deepEqual((await reader.list({ limit: 1 })).map((r) => r.id), ["a"]);
  assert.equal(reads, 1);
  // A new event (a change) makes the next ps read the store again.
  await reader.monitor(monitorBody("b"));
  assert.deepEqual((await reader.list()).map((r) => r.id), ["a", "b"]);
  assert.equal(reads, 2);
});

Deno.test("prioritizeReads(): a record removed through the API (no event) is gone from the next ps and inspect", async () => {
  const api = new FakeApi();
  await api.monitor(monitorBody("gone"));
  api.records.get("gone")!.state = "stopped";
  const reader = prioritizeReads(api, { version: () => api.log.length });
  assert.equal((await reader.list()).length, 1);
  assert.equal((await reader.inspect("gone")).id, "gone");
  const events = api.log.length;
  await reader.remove("gone");
  assert.equal(api.log.length, events, "the fake wrote an event: the test proves nothing");
  assert.deepEqual(await reader.list(), []);
  await assert.rejects(reader.inspect("gone"), (e) => e instanceof ApiError && e.status === 404);
});

Deno.test("prioritizeReads(): at most maxConcurrent store reads at once", async () => {
  const api = new FakeApi();
  let active = 0;
  let most = 0;
  api.gcList = async () => {
    active++;
    most = Math.max(most, active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    return [];
  };
  const reader = prioritizeReads(api, { version: () => 0, maxConcurrent: 2 });
  await Promise.all(Array.from({ length: 20 }, () => reader.gcList()));
  assert.equal(most, 2);
});

Deno.test("prioritizeReads(): a ps that starts after a change does not join a store read begun before it", async () => {
  const api = new FakeApi();
  await api.monitor(monitorBody("a"));
  const list = api.list.bind(api);
  let letGo: () => void = () => {};
  let started: () => void = () => {};
  const reading = new Promise<void>((resolve) => started = resolve);
  api.list = async (page) => {
    // The records are read now; the answer comes back later.
    const records = await list(page);
    started();
    await new Promise<void>((resolve) => letGo = resolve);
    return records;
  };
  const reader = prioritizeReads(api, { version: () => api.log.length });
  const before = reader.list();
  await reading;
  await reader.monitor(monitorBody("b"));
  api.list = list;
  const after = reader.list();
  letGo();
  assert.deepEqual((await before).map((r) => r.id), ["a"]);
  assert.deepEqual((await after).map((r) => r.id), ["a", "b"]);
});
