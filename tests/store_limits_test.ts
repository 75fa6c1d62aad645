/**
 * The store's limits met through the daemon: records as large as the API lets them be, exiting
 * together; many stopped records due for retention at once.
 */
import assert from "node:assert/strict";
import { serialize } from "node:v8";
import { Store } from "../src/store/store.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  exitWith,
  type FakeContainer,
  monitorFake,
  startFake,
  stopAll,
} from "./support/fake_container.ts";
import { needs } from "./support/needs.ts";
import { until } from "./support/poll.ts";

/** `count` mount points of `length` bytes each. */
function mounts(dir: string, id: string, count: number, length: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const prefix = `${dir}/mnt/${id}/${i}/`;
    return prefix + "m".repeat(length - prefix.length);
  });
}

/** Waits until every container has left `running`, then returns each one's recorded code. */
async function recordedCodes(d: TestDaemon, ids: string[]): Promise<Map<string, number | null>> {
  const codes = new Map<string, number | null>();
  await until(`${ids.length} exits recorded`, async () => {
    for (const id of ids) {
      if (codes.has(id)) continue;
      const res = await d.api("GET", `/v1/containers/${id}`);
      const record = res.body as { state: string; exit: { code: number | null } | null };
      if (record.state !== "running") codes.set(id, record.exit?.code ?? null);
    }
    return codes.size === ids.length ? codes : null;
  }, 30_000);
  return codes;
}

Deno.test("store limits: 60 containers with 110 mounts of 250 bytes each exit together, every code recorded", async () => {
  const d = await TestDaemon.start();
  const containers: FakeContainer[] = [];
  try {
    for (let i = 0; i < 60; i++) {
      const id = `big-${i}`;
      const started = await monitorFake(d, id, { mounts: mounts(d.dir, id, 110, 250) });
      assert.equal(started.status, 201, started.text);
      containers.push(started.container);
    }
    containers.forEach((c, i) => exitWith(c, i + 1));
    const codes = await recordedCodes(d, containers.map((c) => c.id));
    containers.forEach((c, i) => assert.equal(codes.get(c.id), i + 1, `${c.id}'s code`));
    // And they stay recorded across a restart.
    await d.stop();
    await d.restart();
    for (const [i, c] of containers.entries()) {
      const res = await d.api("GET", `/v1/containers/${c.id}`);
      assert.equal((res.body as { exit: { code: number } }).exit.code, i + 1);
    }
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});

Deno.test("store limits: a record too large to take its exit is refused at monitor (400 naming mounts); 38 ordinary exits beside it are recorded", async () => {
  const d = await TestDaemon.start();
  const containers: FakeContainer[] = [];
  try {
    for (let i = 0; i < 38; i++) {
      const started = await monitorFake(d, `small-${i}`);
      assert.equal(started.status, 201, started.text);
      containers.push(started.container);
    }
    // A body of ~65,300 bytes, nearly all mounts: a record just under the 64 KiB value limit
    // alone, over it once it holds an exit.
    const huge = await monitorFake(d, "huge", { mounts: mounts(d.dir, "huge", 257, 250) });
    containers.push(huge.container);
    assert.equal(huge.status, 400, huge.text);
    assert.match(huge.text, /mounts too large/);
    assert.equal((await d.api("GET", "/v1/containers/huge")).status, 404);
    containers.forEach((c, i) => {
      if (c.id !== "huge") exitWith(c, 100 + i);
    });
    const ids = containers.filter((c) => c.id !== "huge").map((c) => c.id);
    const codes = await recordedCodes(d, ids);
    ids.forEach((id, i) => assert.equal(codes.get(id), 100 + i, `${id}'s code`));
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});

Deno.test("store limits: 1,000 stopped records due for retention at once are all forgotten by the daemon's first sweep", async () => {
  const d = await TestDaemon.start({ extra: { stoppedRetentionMs: 60_000 } });
  try {
    await d.stop();
    // A host that ran many short containers: 1,000 records stopped an hour ago.
    const hourAgo = Date.now() - 3_600_000;
    const kv = await Deno.openKv(d.db);
    try {
      const store = await Store.open(kv, { clock: () => hourAgo });
      for (let i = 0; i < 1_000; i++) {
        const id = `old-${i}`;
        await store.register({
          id,
          runtime: "fake",
          stateDir: `${d.stateRoot}/fake/${id}`,
          pid: 999_999,
          startTime: 1,
          ppid: 0,
          pStartTime: 0,
        });
        await store.recordExit(id, 999_999, 1, {
          code: 0,
          signal: null,
          known: true,
          reason: "exited with code 0",
          at: hourAgo,
        });
        await store.markStopped(id);
      }
    } finally {
      kv.close();
    }
    await d.restart();
    await until("the 1,000 records forgotten", async () => {
      const res = await d.api("GET", "/v1/containers");
      return (res.body as unknown[]).length === 0 ? true : null;
    });
    assert.match(d.logs, /forgot 1000 containers/);
    assert.doesNotMatch(d.logs, /Too many checks/);
  } finally {
    await d.dispose();
  }
});

/** The daemon's descriptors open on `fifo` (as /proc/<pid>/fd shows them). */
function fdsOn(pid: number, fifo: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`) === fifo) found.push(entry.name);
    } catch {
      // Closed meanwhile.
    }
  }
  return found;
}

const LOST = "exit of huge could not be recorded, it is lost";

needs("cc").test({
  name: "store limits: an exit refused for good is logged once across a restart, its status " +
    "consumed, and neither the daemon nor the fd store holds its FIFO afterwards",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const d = await TestDaemon.start({ serviceManager: { storeMax: 4096 } });
  const containers: FakeContainer[] = [];
  try {
    const huge = await startFake(d, "huge");
    containers.push(huge);
    const fifo = Deno.realPathSync(`${d.stateRoot}/fake/huge/exit_fifo`);
    await d.stop();
    // A record written before the store refused such records: no room left for an exit.
    const kv = await Deno.openKv(d.db);
    try {
      const entry = await kv.get<Record<string, unknown>>(["container", "huge"]);
      // 65,400 bytes: within Deno KV's 64 KiB, with no room for an exit in the store's budget.
      const base = serialize({ ...entry.value!, mounts: [""] }).length;
      const mounts = ["/" + "h".repeat(65_400 - base - 1)];
      await kv.set(["container", "huge"], { ...entry.value!, mounts });
    } finally {
      kv.close();
    }
    await d.restart();
    exitWith(huge, 3);
    await until("the refusal", () => d.logs.includes(LOST) || null);
    await until("the FIFO let go", () => fdsOn(d.pid, fifo).length === 0 || null);
    await until("the fd store's copy removed", async () => {
      return (await d.fdStoreStats()).stored === 0 || null;
    });
    const health = async () => (await d.api("GET", "/v1/health")).body as { reasons: string[] };
    assert.ok((await health()).reasons.some((r) => r.startsWith("exit of huge refused")));
    // The shim is gone too; the next start finds nothing to decode and nothing to refuse.
    huge.process.kill("SIGKILL");
    await huge.process.status;
    await d.stop();
    await d.restart();
    await until("the restart settled", async () => {
      const h = await d.api("GET", "/v1/health");
      return (h.body as { monitored: number }).monitored === 0 || null;
    });
    assert.deepEqual(fdsOn(d.pid, fifo), []);
    assert.equal((await d.fdStoreStats()).stored, 0);
    assert.equal(d.logs.split(LOST).length - 1, 1, d.logs);
    assert.ok(
      (await health()).reasons.some((r) => r.startsWith("exit of huge refused")),
      "health still says the exit was lost",
    );
    assert.equal((await d.api("GET", "/v1/containers/huge")).status, 200);
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});
