/**
 * Two writers on one exit FIFO (a shim and a stray process, or two shims of one state dir):
 * eight bytes arrive where four were expected. The real daemon records the first complete
 * status as the exit and says in its log what followed; nothing is left in the FIFO.
 */

import assert from "node:assert/strict";
import * as libc from "../src/sys/libc.ts";
import { identify } from "../src/sys/proc.ts";
import { encodeExitStatus } from "../src/supervisor/exit_status.ts";
import { TestDaemon } from "./support/daemon.ts";
import { waitFor, waitStopped } from "./support/fault_util.ts";

Deno.test("two writers on one exit FIFO: the first complete status is recorded, what followed is logged", async () => {
  const daemon = await TestDaemon.start();
  const container = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
  const writers: number[] = [];
  try {
    const stateDir = `${daemon.stateRoot}/fake/two`;
    const res = await daemon.api("POST", "/v1/fifos", { stateDir });
    assert.equal(res.status, 200, res.text);
    const fifo = `${stateDir}/exit_fifo`;
    for (let i = 0; i < 2; i++) {
      writers.push(libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC));
    }
    const me = identify(container.pid)!;
    const monitored = await daemon.api("POST", "/v1/containers", {
      id: "two",
      runtime: "fake",
      stateDir,
      pid: me.pid,
      ppid: 0,
      startTime: me.startTime,
    });
    assert.equal(monitored.status, 201, monitored.text);
    libc.write(writers[0]!, encodeExitStatus(5));
    libc.write(writers[1]!, encodeExitStatus(6));
    for (const fd of writers.splice(0)) libc.close(fd);
    const record = await waitStopped(daemon, "two");
    assert.deepEqual([record.exit?.code, record.exit?.known], [5, true]);
    await waitFor("the log to say what followed", () => /more bytes/.test(daemon.logs));
  } finally {
    for (const fd of writers) libc.close(fd);
    try {
      container.kill("SIGKILL");
    } catch {
      // Cleanup already killed it.
    }
    await container.status;
    await daemon.dispose();
  }
});
