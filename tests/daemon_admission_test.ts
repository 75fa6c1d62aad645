/**
 * What the real daemon lets in: a state dir is exactly `<stateRoot>/<runtime>/<id>` (never a
 * parent of other containers' dirs), a live pid is adopted only with its start time, an init
 * that already exited is accepted with its identity unknown when its FIFO's read end is held,
 * and ids whose state dir could not exist are refused.
 */

import assert from "node:assert/strict";
import { encodeExitStatus } from "../src/supervisor/exit_status.ts";
import { readProcStat } from "../src/sys/proc.ts";
import type { ContainerRecord } from "../src/types.ts";
import { fakeRuntime } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { exitWith, startFake, stopAll } from "./support/fake_container.ts";
import { sleep, waitFor } from "./support/fault_util.ts";

/** The pid of a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("/bin/true", { stdin: "null", stdout: "null" }).spawn();
  await child.status;
  return child.pid;
}

Deno.test("admission: a state dir that is the parent of other containers' dirs is refused, and no sibling is touched", async () => {
  const d = await TestDaemon.start();
  try {
    const sibling = `${d.stateRoot}/fake/sibling`;
    assert.equal((await d.api("POST", "/v1/fifos", { stateDir: sibling })).status, 200);
    const pid = await deadPid();
    const parents = [`${d.stateRoot}/fake`, `${d.stateRoot}/fake/`];
    for (const stateDir of parents) {
      const res = await d.api("POST", "/v1/gc", {
        id: "x1",
        runtime: "fake",
        pid,
        ppid: 0,
        stateDir,
      });
      assert.equal(res.status, 400, `gc add with stateDir ${stateDir}: ${res.text}`);
      assert.match(res.text, /must be .*\/fake\/x1/);
    }
    // Another container's dir, or one under another runtime's name, is not this one's either.
    const elsewhere = [
      { id: "x1", runtime: "fake", stateDir: sibling },
      { id: "x1", runtime: "fake", stateDir: `${d.stateRoot}/other/x1` },
      { id: "x1", runtime: "fake", stateDir: `${d.stateRoot}/fake/x1/deeper` },
    ];
    for (const body of elsewhere) {
      const gc = await d.api("POST", "/v1/gc", { ...body, pid, ppid: 0 });
      assert.equal(gc.status, 400, `gc add ${JSON.stringify(body)}: ${gc.text}`);
      const mon = await d.api("POST", "/v1/containers", { ...body, pid, ppid: 0, startTime: 5 });
      assert.equal(mon.status, 400, `monitor ${JSON.stringify(body)}: ${mon.text}`);
    }
    for (const stateDir of [`${d.stateRoot}/fake`, d.stateRoot, `${d.stateRoot}/fake/a/b`]) {
      const res = await d.api("POST", "/v1/fifos", { stateDir });
      assert.equal(res.status, 400, `create-fifo ${stateDir}: ${res.text}`);
    }
    // Long enough for a cleanup that was let in to have run.
    await sleep(1000);
    assert.ok((await Deno.stat(`${sibling}/exit_fifo`)).isFifo, "the sibling's FIFO is there");
    assert.equal((await d.api("GET", "/v1/gc")).text.trim(), "[]");
  } finally {
    await d.dispose();
  }
});

Deno.test("admission: gc add of a live pid without a start time is refused and the process is not signalled", async () => {
  const d = await TestDaemon.start();
  const sleeper = new Deno.Command("sleep", { args: ["1000"], stdin: "null" }).spawn();
  try {
    const started = readProcStat(sleeper.pid)!.startTime;
    const res = await d.api("POST", "/v1/gc", {
      id: "web-3",
      runtime: "fake",
      pid: sleeper.pid,
      ppid: 0,
    });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /--start-time/);
    const cli = await d.cli(
      "gc",
      "add",
      "web-3",
      "--runtime",
      "fake",
      "--pid",
      `${sleeper.pid}`,
      "--ppid",
      "0",
    );
    assert.notEqual(cli.code, 0, cli.stdout);
    assert.match(cli.stderr, /--start-time/);
    // A live ppid without its start time is the same mistake.
    const shim = await d.api("POST", "/v1/gc", {
      id: "web-3",
      runtime: "fake",
      pid: await deadPid(),
      ppid: sleeper.pid,
    });
    assert.equal(shim.status, 400, shim.text);
    assert.match(shim.text, /--pstart-time/);
    await sleep(500);
    assert.equal(readProcStat(sleeper.pid)?.startTime, started, "the sleep still runs");
    assert.equal((await d.api("GET", "/v1/containers/web-3")).status, 404);
    // A gone pid needs no start time: nothing of it is left to signal.
    const gone = await d.api("POST", "/v1/gc", {
      id: "web-4",
      runtime: "fake",
      pid: await deadPid(),
      ppid: 0,
    });
    assert.equal(gone.status, 200, gone.text);
    const record = (await d.api("GET", "/v1/containers/web-4")).body as ContainerRecord;
    assert.equal(record.startTime, 0);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await d.dispose();
  }
});

Deno.test("admission: monitor of an init that already exited, FIFO read end held, records the exit in the FIFO", async () => {
  const fakeDir = await Deno.makeTempDir({ prefix: "reaperd-fake-" });
  const d = await TestDaemon.start({
    runtimes: { fake: { path: await fakeRuntime(), args: ["--fake-dir", fakeDir] } },
  });
  try {
    const stateDir = `${d.stateRoot}/fake/quick-1`;
    const created = await d.api("POST", "/v1/fifos", { stateDir });
    assert.equal(created.status, 200, created.text);
    // The runtime's own root, as runc makes it: cleanup calls the runtime only when it exists.
    await Deno.mkdir(`${stateDir}/fake`);
    // The shim wrote the status and exited before the engine got to call monitor.
    const writer = await Deno.open(`${stateDir}/exit_fifo`, { write: true });
    await writer.write(encodeExitStatus(7));
    writer.close();
    const pid = await deadPid();
    const ppid = await deadPid();
    const res = await d.api("POST", "/v1/containers", {
      id: "quick-1",
      runtime: "fake",
      stateDir,
      pid,
      ppid,
    });
    assert.equal(res.status, 201, res.text);
    const record = res.body as ContainerRecord;
    assert.equal(record.startTime, 0, "identity unknown");
    assert.equal(record.pStartTime, 0, "identity unknown");
    const stopped = await waitFor("quick-1 stopped", async () => {
      const r = (await d.api("GET", "/v1/containers/quick-1")).body as ContainerRecord;
      return r.state === "stopped" ? r : null;
    });
    assert.equal(stopped.exit?.code, 7);
    assert.equal(stopped.exit?.known, true);
    // Its identity unknown, whatever holds its pid now is not signalled; the runtime is asked
    // by container id to kill what may be left, then to delete it.
    const argv = (await Deno.readTextFile(`${fakeDir}/argv.log`)).trim().split("\n");
    const root = `--root ${stateDir}/fake`;
    assert.deepEqual(argv, [`${root} kill quick-1 9`, `${root} delete --force quick-1`]);

    // Without a held read end there is no exit to wait for: still refused.
    const other = `${d.stateRoot}/fake/quick-2`;
    await Deno.mkdir(other, { recursive: true });
    const refused = await d.api("POST", "/v1/containers", {
      id: "quick-2",
      runtime: "fake",
      stateDir: other,
      pid,
      ppid: 0,
    });
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.text, /--start-time/);
  } finally {
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});

Deno.test("admission: ids whose state dir cannot exist are refused with 400, create-fifo too", async () => {
  const d = await TestDaemon.start();
  try {
    const long = "a".repeat(256);
    const pid = await deadPid();
    const gc = await d.api("POST", "/v1/gc", { id: long, runtime: "fake", pid, ppid: 0 });
    assert.equal(gc.status, 400, gc.text);
    assert.match(gc.text, /255/);
    const mon = await d.api("POST", "/v1/containers", {
      id: long,
      runtime: "fake",
      stateDir: `${d.stateRoot}/fake/${long}`,
      pid,
      ppid: 0,
      startTime: 5,
    });
    assert.equal(mon.status, 400, mon.text);
    const fifo = await d.api("POST", "/v1/fifos", { stateDir: `${d.stateRoot}/fake/${long}` });
    assert.equal(fifo.status, 400, fifo.text);
    // 255 bytes is the longest name a directory entry can have: still fine.
    const max = "b".repeat(255);
    const ok = await d.api("POST", "/v1/fifos", { stateDir: `${d.stateRoot}/fake/${max}` });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await d.api("GET", "/v1/gc")).text.trim(), "[]");
  } finally {
    await d.dispose();
  }
});

Deno.test("admission: monitor again of a run that already exited is refused and its record keeps its exit", async () => {
  const d = await TestDaemon.start();
  const c = await startFake(d, "again1");
  try {
    const startTime = readProcStat(c.process.pid)!.startTime;
    c.process.kill("SIGKILL");
    await c.process.status;
    exitWith(c, 7);
    await waitFor("the container to be cleaned", async () => {
      const r = (await d.api("GET", "/v1/containers/again1")).body as ContainerRecord;
      return r.state === "stopped";
    });
    // An engine retrying its monitor of the same run (same pid and start time), its FIFO again.
    const stateDir = `${d.stateRoot}/fake/again1`;
    assert.equal((await d.api("POST", "/v1/fifos", { stateDir })).status, 200);
    const res = await d.api("POST", "/v1/containers", {
      id: "again1",
      runtime: "fake",
      stateDir,
      pid: c.process.pid,
      startTime,
      ppid: 0,
    });
    assert.equal(res.status, 409, res.text);
    assert.match(res.text, /already exited/);
    const r = (await d.api("GET", "/v1/containers/again1")).body as ContainerRecord;
    assert.equal(r.state, "stopped");
    assert.equal(r.exit?.code, 7);
    const health = (await d.api("GET", "/v1/health")).body as { monitored: number };
    assert.equal(health.monitored, 0);
  } finally {
    await stopAll([c]);
    await d.dispose();
  }
});
