/**
 * `gc add` against the real daemon, for a container reaperd already follows: one running and
 * monitored is refused (its exit is still to come, and cleanup would kill it), one whose exit is
 * recorded and whose first cleanup is under way gets its current GC status, nothing else.
 */
import assert from "node:assert/strict";
import { fakeRuntime } from "./fixtures/shim.ts";
import * as libc from "../src/sys/libc.ts";
import { readProcStat } from "../src/sys/proc.ts";
import type { ReaperEvent } from "../src/store/events.ts";
import type { ContainerRecord } from "../src/types.ts";
import type { GcStatus } from "../src/daemon/api.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  exitWith,
  type FakeContainer,
  monitorFake,
  orphanHeldByShim,
  stopAll,
} from "./support/fake_container.ts";
import { until } from "./support/poll.ts";

async function events(d: TestDaemon, id: string): Promise<ReaperEvent[]> {
  const res = await d.api("GET", "/v1/events");
  return res.text.trim().split("\n").map((l) => JSON.parse(l) as ReaperEvent).filter((e) =>
    e.id === id
  );
}

async function inspect(d: TestDaemon, id: string): Promise<ContainerRecord> {
  const res = await d.api("GET", `/v1/containers/${id}`);
  assert.equal(res.status, 200, res.text);
  return res.body as ContainerRecord;
}

function stopped(d: TestDaemon, id: string): Promise<ContainerRecord> {
  return until(`${id} stopped`, async () => {
    const record = await inspect(d, id);
    return record.state === "stopped" ? record : null;
  });
}

/** A process that stands for a shim: a live `sleep`, with its start time. */
function spawnShim(): { process: Deno.ChildProcess; startTime: number } {
  const process = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
  return { process, startTime: readProcStat(process.pid)!.startTime };
}

async function deadPid(): Promise<number> {
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  return gone.pid;
}

Deno.test("gc add of a running, monitored container is refused with 409, signals nothing, and its exit is then recorded and cleaned up", async () => {
  const d = await TestDaemon.start();
  const shim = spawnShim();
  const containers: FakeContainer[] = [];
  try {
    const monitored = await monitorFake(d, "live-1", {
      ppid: shim.process.pid,
      pStartTime: shim.startTime,
    });
    containers.push(monitored.container);
    assert.equal(monitored.status, 201, monitored.text);
    const init = monitored.container.process;
    const initStart = readProcStat(init.pid)!.startTime;

    // Its own processes, named right: what an engine that lost track of it would send.
    const res = await d.api("POST", "/v1/gc", {
      id: "live-1",
      runtime: "fake",
      pid: init.pid,
      startTime: initStart,
      ppid: shim.process.pid,
      pStartTime: shim.startTime,
    });
    assert.equal(res.status, 409, res.text);
    const message = (res.body as { error: string }).error;
    assert.match(message, /^container live-1 is running and monitored/);
    assert.match(message, /stop it with its runtime/);
    assert.match(message, /reaperd gc status live-1/);
    const cli = await d.cli(
      "gc",
      "add",
      "live-1",
      "--runtime",
      "fake",
      "--pid",
      `${init.pid}`,
      "--start-time",
      `${initStart}`,
      "--ppid",
      `${shim.process.pid}`,
      "--pstart-time",
      `${shim.startTime}`,
    );
    assert.deepEqual(cli, { code: 1, stdout: "", stderr: `reaperd: ${message}\n` });

    // A cleanup would have killed both by now; they run on, and reaperd still watches.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (
      const [what, pid, start] of [
        ["init", init.pid, initStart],
        ["shim", shim.process.pid, shim.startTime],
      ] as const
    ) {
      const stat = readProcStat(pid);
      assert.equal(stat?.startTime, start, `the ${what} was signalled`);
      assert.notEqual(stat?.state, "Z", `the ${what} was killed`);
    }
    const record = await inspect(d, "live-1");
    assert.equal(record.state, "running");
    assert.equal(record.pid, init.pid);
    assert.equal((await d.api("GET", "/v1/gc/live-1")).status, 404, "not in GC");
    const health = (await d.api("GET", "/v1/health")).body as { monitored: number };
    assert.equal(health.monitored, 1);

    // Stopped as its runtime stops it: the init ends, the shim writes its status.
    init.kill("SIGTERM");
    await init.status;
    exitWith(monitored.container, 143);
    const done = await stopped(d, "live-1");
    assert.deepEqual(
      [done.exit?.code, done.exit?.signal, done.exit?.known],
      [143, 15, true],
    );
    // Cleaned up as usual: the shim killed, the state dir removed.
    assert.equal((await shim.process.status).signal, "SIGKILL");
    await assert.rejects(Deno.stat(`${d.stateRoot}/fake/live-1`), Deno.errors.NotFound);
    const kinds = (await events(d, "live-1")).map((e) => e.kind);
    assert.deepEqual(kinds, ["monitor", "exit", "stopped"]);
  } finally {
    await stopAll(containers);
    try {
      shim.process.kill("SIGKILL");
    } catch {
      // Already killed by the cleanup.
    }
    await shim.process.status;
    await d.dispose();
  }
});

Deno.test("gc add of a container whose first cleanup is under way answers its GC status and adds no second cleanup", async () => {
  const fakeDir = await Deno.makeTempDir({ prefix: "reaperd-fake-" });
  const d = await TestDaemon.start({
    runtimes: { fake: { path: await fakeRuntime(), args: ["--fake-dir", fakeDir] } },
    gc: { stepTimeoutMs: 30_000 },
  });
  const containers: FakeContainer[] = [];
  try {
    const monitored = await monitorFake(d, "ending-1");
    containers.push(monitored.container);
    assert.equal(monitored.status, 201, monitored.text);
    const init = monitored.container.process;
    // The runtime's own root: cleanup calls the runtime's delete only when it exists.
    await Deno.mkdir(`${d.stateRoot}/fake/ending-1/fake`);
    await Deno.writeTextFile(`${fakeDir}/hang`, "delete");
    init.kill("SIGKILL");
    await init.status;
    exitWith(monitored.container, 137);
    await until("the first attempt in delete", async () => {
      try {
        return (await Deno.readTextFile(`${fakeDir}/hang.pid`)).trim() || null;
      } catch {
        return null;
      }
    });
    assert.equal((await inspect(d, "ending-1")).state, "stopping");

    // An engine that saw the container die hands it to GC too, as it would have without reaperd.
    const pid = await deadPid();
    const body = { id: "ending-1", runtime: "fake", pid, ppid: 0 };
    const res = await d.api("POST", "/v1/gc", body);
    assert.equal(res.status, 200, res.text);
    const view = res.body as GcStatus;
    assert.equal(view.record.state, "stopping");
    assert.equal(view.record.pid, init.pid, "the record keeps the processes it was cleaned by");
    assert.equal(view.record.exit?.code, 137);
    assert.equal(view.entry.attempts, 0);
    const cli = await d.cli(
      "gc",
      "add",
      "ending-1",
      "--runtime",
      "fake",
      "--pid",
      `${pid}`,
      "--ppid",
      "0",
    );
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^ending-1: /);
    assert.deepEqual(await d.api("POST", "/v1/gc", body), res, "the same answer each time");

    // The first attempt goes on as the only one: released, it ends the cleanup.
    await Deno.remove(`${fakeDir}/hang`);
    for (const line of (await Deno.readTextFile(`${fakeDir}/hang.pid`)).trim().split("\n")) {
      Deno.kill(Number(line), "SIGKILL");
    }
    const done = await stopped(d, "ending-1");
    assert.equal(done.pid, init.pid);
    assert.equal(done.exit?.code, 137);
    const log = await events(d, "ending-1");
    assert.ok(
      log.every((e) => (e.detail as { reason?: string } | null)?.reason !== "gc add"),
      `no gc add was taken: ${JSON.stringify(log)}`,
    );
    const deletes = (await Deno.readTextFile(`${fakeDir}/argv.log`)).trim().split("\n")
      .filter((l) => l.includes(" delete "));
    assert.equal(deletes.length, 2, "the first attempt, then its one retry");
  } finally {
    await stopAll(containers);
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});

Deno.test("gc add of a container adopted with unknown identity and still watched names its process, which is cleaned up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  // A state dir with no record, its FIFO held by a shim: adopted at start, identity unknown.
  const stateDir = `${dir}/state/fake/found-1`;
  const writer = await orphanHeldByShim(stateDir);
  const init = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
  const d = await TestDaemon.start({ dir });
  try {
    const adopted = await inspect(d, "found-1");
    assert.deepEqual([adopted.state, adopted.pid, adopted.startTime], ["running", 0, 0]);
    // The operator knows its process: gc add is how to have it killed and cleaned.
    const res = await d.api("POST", "/v1/gc", {
      id: "found-1",
      runtime: "fake",
      pid: init.pid,
      startTime: readProcStat(init.pid)!.startTime,
      ppid: 0,
    });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as GcStatus).record.pid, init.pid);
    assert.equal((await init.status).signal, "SIGKILL");
    const done = await stopped(d, "found-1");
    assert.equal(done.pid, init.pid);
    await assert.rejects(Deno.stat(stateDir), Deno.errors.NotFound);
    const health = (await d.api("GET", "/v1/health")).body as { monitored: number };
    assert.equal(health.monitored, 0, "no longer watched");
  } finally {
    libc.close(writer);
    try {
      init.kill("SIGKILL");
    } catch {
      // Killed by the cleanup.
    }
    await init.status;
    await d.dispose();
  }
});
