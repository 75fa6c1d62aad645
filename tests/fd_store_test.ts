/**
 * The fd store against the real daemon, run by the test service manager
 * (tests/support/fd_store_manager.c), which speaks systemd's protocol: read ends kept with
 * FDSTORE=1 come back at fds 3… after a kill -9, so a status written while no daemon runs is
 * recorded with its code. The same steps with a store of size 0 (systemd's default) show what
 * happens without it.
 */

import assert from "node:assert/strict";
import { TestDaemon } from "./support/daemon.ts";
import {
  crashRuntime,
  record,
  sleep,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
  writeControl,
} from "./support/fault_util.ts";
import { buildTestShim, stopShim } from "./fixtures/shim.ts";
import { needs } from "./support/needs.ts";
import { fillDisk, mountSmallDisk, unmountSmallDisk } from "./support/small_disk.ts";

/** The test service manager and the test shim are built with cc. */
const withCc = needs("cc");
/** The store's disk is a tmpfs of its own. */
const asRootWithCc = needs("root", "cc");

const RUNTIME = "crt";

async function withManagedDaemon(
  storeMax: number,
  fn: (daemon: TestDaemon) => Promise<void>,
): Promise<void> {
  await buildTestShim();
  const log = await Deno.makeTempFile({ prefix: "reaperd-fdstore-runtime-" });
  const daemon = await TestDaemon.start({
    runtimes: crashRuntime(RUNTIME, log),
    serviceManager: { storeMax },
  });
  try {
    await fn(daemon);
  } finally {
    await daemon.dispose();
    await Deno.remove(log).catch(() => {});
  }
}

for (const storeMax of [4096, 0]) {
  const kept = storeMax > 0;
  withCc.test({
    name: kept
      ? "fd store: a status written while the daemon is down is recorded with its code"
      : "without an fd store, a status written while the daemon is down is lost (unknown)",
    sanitizeResources: false,
    sanitizeOps: false,
  }, async () => {
    await withManagedDaemon(storeMax, async (daemon) => {
      const monitored = await startContainer(daemon, { id: "down-1", runtime: RUNTIME });
      // Held by create-fifo, not yet monitored, when the daemon dies.
      const held = await startContainer(daemon, {
        id: "held-1",
        runtime: RUNTIME,
        noMonitor: true,
      });
      await daemon.stop("SIGKILL");
      await writeControl(monitored.stateDir, 42);
      await writeControl(held.stateDir, 7);
      const [m, h] = await Promise.all([
        monitored.shim.status,
        held.shim.status,
      ]);
      await daemon.restart();
      try {
        const res = await daemon.api("POST", "/v1/containers", {
          id: "held-1",
          runtime: RUNTIME,
          stateDir: held.stateDir,
          pid: held.shim.container.pid,
          ppid: held.shim.shim.pid,
          startTime: held.shim.container.startTime,
          pStartTime: held.shim.shim.startTime,
        });
        const down = await waitStopped(daemon, "down-1", 20_000);
        if (kept) {
          assert.ok(m.success && h.success, "both shims wrote their status");
          assert.equal(res.status, 201, res.text);
          assert.deepEqual([down.exit?.known, down.exit?.code], [true, 42]);
          const late = await waitStopped(daemon, "held-1", 20_000);
          assert.deepEqual([late.exit?.known, late.exit?.code], [true, 7]);
          // Both exits are durable and consumed: the store keeps nothing.
          const stats = await waitFor("the fd store to empty", async () => {
            const s = await daemon.fdStoreStats();
            return s.stored === 0 ? s : null;
          });
          assert.equal(stats.refused, 0);
          assert.equal(stats.hup, 0, "no kept fd was dropped on hang-up (FDPOLL=0)");
          assert.equal(stats.duplicates, 0);
          assert.ok(stats.received >= 2 && stats.removed >= 2, JSON.stringify(stats));
        } else {
          assert.equal(m.success, false, "with no reader the shim's write fails");
          assert.deepEqual([down.exit?.known, down.exit?.code], [false, null]);
          assert.equal((await daemon.fdStoreStats()).stored, 0);
        }
      } finally {
        await stopShim(monitored.shim);
        await stopShim(held.shim);
      }
    });
  });
}

withCc.test({
  name: "fd store: a restart with nothing to do keeps every running container's read end",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await withManagedDaemon(4096, async (daemon) => {
    const boxes = await Promise.all(
      ["r-1", "r-2", "r-3"].map((id) => startContainer(daemon, { id, runtime: RUNTIME })),
    );
    try {
      assert.equal((await daemon.fdStoreStats()).stored, 3);
      for (let i = 0; i < 3; i++) {
        await daemon.stop(i === 1 ? "SIGTERM" : "SIGKILL");
        await daemon.restart();
      }
      const health = await daemon.api("GET", "/v1/health");
      assert.equal((health.body as { monitored: number }).monitored, 3);
      const stats = await daemon.fdStoreStats();
      assert.equal(stats.stored, 3, "adopted read ends are not stored twice");
      assert.equal(stats.duplicates, 0);
      assert.match(daemon.logs, /restored: 3 monitored/);
      await Promise.all(boxes.map((b, i) => b.exit(i)));
      for (const [i, b] of boxes.entries()) {
        const r = await waitStopped(daemon, b.id, 20_000);
        assert.deepEqual([r.exit?.known, r.exit?.code], [true, i]);
      }
      await waitFor("the fd store to empty", async () => {
        return (await daemon.fdStoreStats()).stored === 0;
      });
      assert.equal(await record(daemon, "none"), null);
      await sleep(0);
    } finally {
      await Promise.all(boxes.map((b) => stopShim(b.shim)));
    }
  });
});

asRootWithCc.test({
  name: "fd store: an exit decoded but not yet durable when the daemon is killed is recorded " +
    "by the next one with its code",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await buildTestShim();
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fdstore-pending-" });
  const fs = await mountSmallDisk(dir);
  let daemon: TestDaemon | undefined;
  const boxes: TestContainer[] = [];
  try {
    daemon = await TestDaemon.start({
      dir,
      runtimes: crashRuntime(RUNTIME, `${dir}/runtime.log`),
      extra: { db: `${fs}/reaperd.db` },
      serviceManager: { storeMax: 4096 },
    });
    const d = daemon;
    for (const id of ["p1", "p2", "p3"]) {
      boxes.push(await startContainer(d, { id, runtime: RUNTIME }));
    }
    // The store cannot take the exits: the daemon decodes them and keeps them in memory.
    fillDisk(`${fs}/filler`);
    for (const [i, b] of boxes.entries()) await b.exit(20 + i);
    await Promise.all(boxes.map((b) => b.shim.status));
    await waitFor("every exit decoded and held", async () => {
      const h = await d.api("GET", "/v1/health");
      return (h.body as { pendingWrites: number }).pendingWrites === boxes.length;
    });
    await d.stop("SIGKILL");
    await Deno.remove(`${fs}/filler`);
    await d.restart();
    for (const [i, b] of boxes.entries()) {
      const r = await waitStopped(d, b.id, 20_000);
      assert.deepEqual([r.exit?.known, r.exit?.code], [true, 20 + i], b.id);
    }
    await waitFor("the fd store to empty", async () => {
      return (await d.fdStoreStats()).stored === 0;
    });
  } finally {
    for (const b of boxes) await stopShim(b.shim);
    if (daemon !== undefined) await daemon.dispose().catch(() => {});
    await unmountSmallDisk(fs);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** Open descriptors of process `pid`. */
function openFds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

withCc.test({
  name: "fd store: a manager that does not read its socket costs the daemon no descriptor per " +
    "waiting copy; health says which read ends are not kept, and every copy arrives once it reads",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const COUNT = 2_000;
  const daemon = await TestDaemon.start({
    serviceManager: { storeMax: 4096 },
    extra: { heldFifoTimeoutMs: 600_000 },
  });
  try {
    const before = openFds(daemon.pid);
    await daemon.pauseFdStore(true);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < COUNT) {
        const stateDir = `${daemon.stateRoot}/runc/burst-${next++}`;
        const res = await daemon.api("POST", "/v1/fifos", { stateDir });
        assert.equal(res.status, 200, res.text);
      }
    }));
    // One read end per FIFO and nothing for the copies waiting for the manager.
    const grown = openFds(daemon.pid) - before;
    assert.ok(grown <= COUNT + 64, `${grown} descriptors more for ${COUNT} FIFOs`);
    const health = await daemon.api("GET", "/v1/health");
    const body = health.body as { status: string; reasons: string[]; held: number };
    assert.equal(body.held, COUNT);
    assert.equal(body.status, "degraded", JSON.stringify(body));
    assert.ok(
      body.reasons.some((r) => /read ends? not in the service manager's fd store/.test(r)),
      JSON.stringify(body.reasons),
    );
    await waitFor("the warning", () => /service manager's fd store is full/.test(daemon.logs));
    assert.equal(
      daemon.logs.match(/service manager's fd store is full/g)?.length,
      1,
      "said once, not per FIFO",
    );
    await daemon.pauseFdStore(false);
    const stats = await waitFor("every copy in the manager's store", async () => {
      const s = await daemon.fdStoreStats();
      return s.stored === COUNT ? s : null;
    }, 60_000);
    assert.equal(stats.duplicates, 0);
    assert.equal(stats.truncated, 0);
    await waitFor("health ok again", async () => {
      const h = await daemon.api("GET", "/v1/health");
      return (h.body as { status: string }).status === "ok";
    });
    // The copies are the FIFOs' own: after a kill -9 each is held again from the store.
    await daemon.stop("SIGKILL");
    await daemon.restart();
    const again = await daemon.api("GET", "/v1/health");
    assert.equal((again.body as { held: number }).held, COUNT);
  } finally {
    await daemon.dispose();
  }
});
