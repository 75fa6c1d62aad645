/**
 * One call per container: `monitor --create-fifo` against the real daemon, for an engine whose
 * shim opens the exit FIFO only after monitor has answered. The FIFO is made with the same
 * checks as create-fifo, and without the flag a missing FIFO is still refused.
 */

import assert from "node:assert/strict";
import { startWriter } from "../src/supervisor/_test_writer.ts";
import { TestDaemon } from "./support/daemon.ts";
import { until } from "./support/poll.ts";

/** A container's process that runs until `go` appears in `dir`. */
function startProcess(dir: string): Deno.ChildProcess {
  return new Deno.Command("sh", {
    args: ["-c", `while [ ! -e ${dir}/go ]; do sleep 0.02; done`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

Deno.test("monitor --create-fifo: one call creates the FIFO, holds it, and records the exit written to it later", async () => {
  const d = await TestDaemon.start();
  const goDir = await Deno.makeTempDir({ prefix: "reaperd-createfifo-" });
  const proc = startProcess(goDir);
  try {
    const stateDir = `${d.stateRoot}/fake/one-call`;
    const monitored = await d.cli(
      "monitor",
      "one-call",
      "--runtime",
      "fake",
      "--state-dir",
      stateDir,
      "--pid",
      String(proc.pid),
      "--ppid",
      "0",
      "--create-fifo",
    );
    assert.equal(monitored.code, 0, monitored.stderr);
    const fifo = await Deno.lstat(`${stateDir}/exit_fifo`);
    assert.ok(fifo.isFifo, "the state dir holds a FIFO");
    assert.equal((fifo.mode ?? 0) & 0o777, 0o600);
    assert.equal(((await Deno.lstat(stateDir)).mode ?? 0) & 0o777, 0o700);

    // The shim comes now: its blocking write-only open returns because the daemon reads.
    await Deno.writeTextFile(`${goDir}/go`, "");
    await proc.status;
    const writer = startWriter(`${stateDir}/exit_fifo`, { exit: 7 });
    assert.equal((await writer.status).code, 0);
    const stopped = await until("one-call stopped", async () => {
      const res = await d.api("GET", "/v1/containers/one-call");
      assert.equal(res.status, 200, res.text);
      const r = res.body as { state: string; exit: { code: number; known: boolean } };
      return r.state === "stopped" ? r : null;
    });
    assert.deepEqual([stopped.exit.code, stopped.exit.known], [7, true]);
  } finally {
    try {
      proc.kill("SIGKILL");
    } catch { /* already gone */ }
    await proc.status;
    await Deno.remove(goDir, { recursive: true });
    await d.dispose();
  }
});

Deno.test("monitor without createFifo still refuses a missing FIFO and creates nothing", async () => {
  const d = await TestDaemon.start();
  try {
    const stateDir = `${d.stateRoot}/fake/no-fifo`;
    const res = await d.api("POST", "/v1/containers", {
      id: "no-fifo",
      runtime: "fake",
      stateDir,
      pid: Deno.pid,
      ppid: 0,
    });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /exit_fifo does not exist/);
    assert.equal(await lstatOrNull(stateDir), null, "no state dir made");
    assert.equal((await d.api("GET", "/v1/containers/no-fifo")).status, 404);
  } finally {
    await d.dispose();
  }
});

Deno.test("monitor createFifo refuses a state dir reached through a symlink and makes nothing there", async () => {
  const d = await TestDaemon.start();
  const elsewhere = await Deno.makeTempDir({ prefix: "reaperd-createfifo-target-" });
  try {
    await Deno.mkdir(`${d.stateRoot}`, { recursive: true });
    await Deno.symlink(elsewhere, `${d.stateRoot}/fake`);
    const res = await d.api("POST", "/v1/containers", {
      id: "linked",
      runtime: "fake",
      stateDir: `${d.stateRoot}/fake/linked`,
      pid: Deno.pid,
      ppid: 0,
      createFifo: true,
    });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /is a symlink/);
    assert.deepEqual([...Deno.readDirSync(elsewhere)], [], "nothing created through the link");
    const bad = await d.api("POST", "/v1/containers", {
      id: "flag",
      runtime: "fake",
      stateDir: `${d.stateRoot}/other/flag`,
      pid: Deno.pid,
      ppid: 0,
      createFifo: "yes",
    });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.text, /createFifo must be true or false/);
  } finally {
    await d.dispose();
    await Deno.remove(elsewhere, { recursive: true });
  }
});
