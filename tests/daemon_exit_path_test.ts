/**
 * The exit path against the real daemon with a slow runtime: `gc status` says "in progress"
 * from the exit until its cleanup has ended (the first attempt included), and an engine that
 * restarts the same container in the same state dir is held off until then, so nothing of the
 * new run is touched by the old run's cleanup.
 */

import assert from "node:assert/strict";
import { stopShim } from "./fixtures/shim.ts";
import { readProcStat } from "../src/sys/proc.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  crashRuntime,
  record,
  runtimeLog,
  startContainer,
  type TestContainer,
  waitFor,
} from "./support/fault_util.ts";

const RT = "slowrt";

async function setUp() {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-exitpath-" });
  const log = `${dir}/runtime.log`;
  const d = await TestDaemon.start({ dir, runtimes: crashRuntime(RT, log) });
  return { d, log };
}

/** `GET /v1/gc/:id`: 200 while in progress, 404 once not (what `gc status` exits 0 / 1 on). */
async function gcStatusCode(d: TestDaemon, id: string): Promise<number> {
  return (await d.api("GET", `/v1/gc/${id}`)).status;
}

Deno.test("gc status is in progress from the exit until the cleanup ends, the first attempt included", async () => {
  const { d, log } = await setUp();
  let c: TestContainer | undefined;
  try {
    // Each runtime call takes a second: the first attempt (kill, delete) takes two or more.
    c = await startContainer(d, { id: "slow-1", runtime: RT, slow: 1 });
    await c.exit(3);
    const stopping = await waitFor("the exit to be recorded", async () => {
      const r = await record(d, "slow-1");
      return r?.state === "running" ? null : r;
    });
    assert.equal(stopping?.state, "stopping");
    assert.equal(stopping?.exit?.code, 3);
    // What an engine runs before it reuses the id or the state dir.
    const cli = await d.cli("gc", "status", "slow-1");
    assert.equal(cli.code, 0, `gc status during the first attempt: ${cli.stdout}${cli.stderr}`);
    const listed = (await d.api("GET", "/v1/gc")).body as Array<{ record: { id: string } }>;
    assert.deepEqual(listed.map((v) => v.record.id), ["slow-1"], "gc ls lists it too");
    let polls = 0;
    await waitFor(
      "gc status to say it is over",
      async () => {
        const code = await gcStatusCode(d, "slow-1");
        if (code === 200) {
          polls++;
          return null;
        }
        assert.equal(code, 404);
        return true;
      },
      20_000,
      100,
    );
    assert.ok(polls >= 5, `in progress through the slow cleanup (${polls} polls)`);
    // Not in progress means done: stopped, the runtime's delete ran.
    assert.equal((await record(d, "slow-1"))?.state, "stopped");
    assert.ok(runtimeLog(log).includes("delete slow-1"));
  } finally {
    await stopShim(c?.shim);
    await d.dispose();
  }
});

Deno.test("an engine restarting a container in its state dir is held off until the old cleanup ends; the new run is never touched", async () => {
  const { d, log } = await setUp();
  const started: TestContainer[] = [];
  try {
    const old = await startContainer(d, { id: "web", runtime: RT, slow: 2 });
    started.push(old);
    await old.exit(3);
    await waitFor("the exit to be recorded", async () => {
      const r = await record(d, "web");
      return r?.state === "stopping" || r?.state === "gc";
    });

    // The engine restarts "web" at once, in the same state dir: refused while cleanup runs.
    const fifo = await d.api("POST", "/v1/fifos", { stateDir: old.stateDir });
    assert.equal(fifo.status, 409, fifo.text);
    assert.match(fifo.text, /still being cleaned up after container web/);
    const sameId = await d.api("POST", "/v1/containers", {
      id: "web",
      runtime: RT,
      stateDir: old.stateDir,
      pid: Deno.pid,
      ppid: 0,
    });
    assert.equal(sameId.status, 409, sameId.text);
    const oneCall = await d.api("POST", "/v1/containers", {
      id: "web",
      runtime: RT,
      stateDir: old.stateDir,
      pid: Deno.pid,
      ppid: 0,
      createFifo: true,
    });
    assert.equal(oneCall.status, 409, oneCall.text);
    const otherId = await d.api("POST", "/v1/containers", {
      id: "web-2",
      runtime: RT,
      stateDir: old.stateDir,
      pid: Deno.pid,
      ppid: 0,
    });
    // Another id's run in this dir is never let in: a state dir is its own container's only.
    assert.equal(otherId.status, 400, otherId.text);
    assert.match(otherId.text, /stateDir must be .*\/web-2/);
    assert.equal((await d.cli("gc", "status", "web")).code, 0);

    // The engine waits for `gc status` to say it is over, then starts the new run.
    await waitFor(
      "the old cleanup to end",
      async () => (await gcStatusCode(d, "web")) === 404,
      30_000,
      100,
    );
    const before = runtimeLog(log).length;
    const fresh = await startContainer(d, { id: "web", runtime: RT });
    started.push(fresh);
    const running = await record(d, "web");
    assert.equal(running?.state, "running");
    assert.equal(running?.pid, fresh.shim.container.pid);

    // Longer than one slow runtime call: a late step of the old cleanup would show by now.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.deepEqual(runtimeLog(log).slice(before), [], "no runtime call after the new run began");
    assert.notEqual(readProcStat(fresh.shim.container.pid), null, "the new run's process lives");
    await Deno.stat(`${fresh.stateDir}/exit_fifo`);
    await Deno.stat(fresh.runtimeState);
    assert.equal((await record(d, "web"))?.state, "running");

    // And the new run's own exit is recorded and cleaned as usual.
    await fresh.exit(0);
    const done = await waitFor("the new run to be stopped", async () => {
      const r = await record(d, "web");
      return r?.state === "stopped" ? r : null;
    });
    assert.equal(done.exit?.code, 0);
    assert.equal(done.pid, fresh.shim.container.pid);
  } finally {
    for (const c of started) await stopShim(c.shim);
    await d.dispose();
  }
});
