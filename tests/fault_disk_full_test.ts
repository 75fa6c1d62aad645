/**
 * A full disk under the store (issue 5): the daemon's KV file lives on a small tmpfs that the
 * test fills. The daemon must stay up, say it is degraded on health and metrics, keep in
 * memory the exits it could not write, refuse new registrations with a 503, and write every
 * kept exit (and finish every cleanup) once space returns, with the true codes.
 */

import assert from "node:assert/strict";
import type { Health } from "../src/daemon/api.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  allEvents,
  crashRuntime,
  getJson,
  metric,
  record,
  report,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";
import { fillDisk, mountSmallDisk, unmountSmallDisk } from "./support/small_disk.ts";

const asRootWithCc = needs("root", "cc");

const RT = "crt";

asRootWithCc.test("fault: the store's disk fills up: degraded but up, exits kept in memory and written once space returns", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fault-full-" });
  const log = `${dir}/runtime.log`;
  const fs = await mountSmallDisk(dir);
  let daemon: TestDaemon | undefined;
  const containers: TestContainer[] = [];
  try {
    daemon = await TestDaemon.start({
      dir,
      runtimes: crashRuntime(RT, log),
      gc: { backoffBaseMs: 200, backoffMaxMs: 600 },
      extra: { db: `${fs}/reaperd.db` },
    });
    const d = daemon;
    // One container whose cleanup is slow, so that it finishes while the disk is full.
    const slow = await startContainer(d, { id: "slow", runtime: RT, slow: 1 });
    containers.push(slow);
    const quick: TestContainer[] = [];
    for (let i = 1; i <= 5; i++) {
      quick.push(await startContainer(d, { id: `q${i}`, runtime: RT }));
    }
    containers.push(...quick);
    await slow.exit(7);
    await waitFor(
      "the slow exit to be recorded",
      async () => (await record(d, "slow"))?.state === "stopping",
    );

    const filled = fillDisk(`${fs}/filler`);
    for (const [i, c] of quick.entries()) await c.exit(11 + i);

    // Degraded, and says so, but answers. Every exit is accounted for: written, or kept in
    // memory (whose containers still read running in the store).
    const health = await waitFor("every exit written or kept, degraded", async () => {
      const h = await getJson<Health>(d, "/v1/health");
      let running = 0;
      for (const c of quick) if ((await record(d, c.id))?.state === "running") running++;
      const settled = h.status === "degraded" && h.pendingWrites >= 1 &&
        running === h.pendingWrites;
      return settled ? h : null;
    });
    assert.match(health.reasons.join(" "), /store/);
    const metrics = (await d.api("GET", "/metrics")).text;
    assert.equal(metric(metrics, "reaperd_degraded"), 1);
    assert.equal(metric(metrics, "reaperd_pending_exit_writes"), health.pendingWrites);

    // A new registration cannot be written: a 503, and the daemon goes on.
    const late = await startContainer(d, { id: "late", runtime: RT, noMonitor: true });
    containers.push(late);
    const refused = await d.api("POST", "/v1/containers", {
      id: "late",
      runtime: RT,
      stateDir: late.stateDir,
      pid: late.shim.container.pid,
      ppid: late.shim.shim.pid,
    });
    assert.equal(refused.status, 503, refused.text);
    // Let the slow cleanup end while the disk is still full, and a few write retries fail.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.equal((await getJson<Health>(d, "/v1/health")).status, "degraded");

    await Deno.remove(`${fs}/filler`);
    await waitFor("health to recover", async () => {
      const h = await getJson<Health>(d, "/v1/health");
      return h.status === "ok" && h.pendingWrites === 0;
    });
    for (const [i, c] of quick.entries()) {
      const r = await waitStopped(d, c.id);
      assert.deepEqual([r.exit?.code, r.exit?.known], [11 + i, true], c.id);
    }
    const s = await waitStopped(d, "slow");
    assert.deepEqual([s.exit?.code, s.exit?.known], [7, true]);
    const events = await allEvents(d);
    for (const c of [slow, ...quick]) {
      const exits = events.filter((e) => e.id === c.id && e.kind === "exit");
      assert.equal(exits.length, 1, `${c.id}: one exit event`);
    }
    assert.equal(metric((await d.api("GET", "/metrics")).text, "reaperd_degraded"), 0);
    report(
      `fault disk-full: ${filled} bytes of filler, ${health.pendingWrites} exits kept in memory ` +
        `and written after, 1 cleanup finished after, 1 registration refused (503), 0 lost`,
    );
  } finally {
    for (const c of containers) await stopShim(c.shim);
    // The daemon holds the KV file open: it goes before the filesystem does.
    if (daemon !== undefined) await daemon.stop("SIGKILL").catch(() => {});
    await unmountSmallDisk(fs);
    await Deno.remove(dir, { recursive: true });
  }
});

asRootWithCc.test("fault: SIGTERM while exits are held in memory: written within the shutdown grace, or each one logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fault-term-" });
  const log = `${dir}/runtime.log`;
  const fs = await mountSmallDisk(dir);
  let daemon: TestDaemon | undefined;
  const containers: TestContainer[] = [];
  try {
    daemon = await TestDaemon.start({
      dir,
      runtimes: crashRuntime(RT, log),
      extra: { db: `${fs}/reaperd.db` },
    });
    const d = daemon;
    const held = async (batch: TestContainer[], firstCode: number) => {
      for (const [i, c] of batch.entries()) await c.exit(firstCode + i);
      return await waitFor("the exits to be held in memory", async () => {
        const h = await getJson<Health>(d, "/v1/health");
        return h.pendingWrites === batch.length ? h : null;
      });
    };

    // 1. The disk frees up while the daemon shuts down: the held exits are written.
    const first: TestContainer[] = [];
    for (let i = 1; i <= 3; i++) first.push(await startContainer(d, { id: `t${i}`, runtime: RT }));
    containers.push(...first);
    fillDisk(`${fs}/filler`);
    const health = await held(first, 21);
    assert.equal(health.status, "degraded");
    assert.match(health.reasons.join(" "), /3 exits held in memory, not recorded: store: /);
    const stopped = d.stop("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await Deno.remove(`${fs}/filler`);
    assert.equal((await stopped).code, 0);
    assert.doesNotMatch(d.logs, /not recorded before shutdown/);
    await d.restart();
    for (const [i, c] of first.entries()) {
      const r = await waitStopped(d, c.id);
      assert.deepEqual([r.exit?.code, r.exit?.known], [21 + i, true], c.id);
    }

    // 2. The disk stays full past the grace: each exit not written is logged with its code.
    const second: TestContainer[] = [];
    for (let i = 1; i <= 2; i++) second.push(await startContainer(d, { id: `u${i}`, runtime: RT }));
    containers.push(...second);
    fillDisk(`${fs}/filler`);
    await held(second, 31);
    const started = performance.now();
    assert.equal((await d.stop("SIGTERM")).code, 0);
    const took = performance.now() - started;
    assert.ok(took >= 9_000 && took < 30_000, `shutdown waited ${took} ms`);
    for (const [i, c] of second.entries()) {
      assert.match(
        d.logs,
        new RegExp(`exit of ${c.id} not recorded before shutdown.*code=${31 + i}`),
      );
    }
  } finally {
    for (const c of containers) await stopShim(c.shim);
    if (daemon !== undefined) await daemon.stop("SIGKILL").catch(() => {});
    await unmountSmallDisk(fs);
    await Deno.remove(dir, { recursive: true });
  }
});
