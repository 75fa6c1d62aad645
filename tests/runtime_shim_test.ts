/**
 * The test shim itself (tests/fixtures/test_shim.c), in exec mode: the protocol bytes it writes
 * into the exit FIFO, and its fault modes. Other tests build on it, so it is checked first.
 */

import assert from "node:assert/strict";
import {
  openExitFifo,
  readFifoBytes,
  type RunningShim,
  shimLog,
  startShim,
  stopShim,
} from "./fixtures/shim.ts";
import { needs } from "./support/needs.ts";

const withCc = needs("cc");

/** Runs `argv` under the shim and returns what the FIFO got and how the shim ended. */
async function runUnderShim(
  argv: string[],
  flags: { noWrite?: boolean; writeBytes?: string } = {},
): Promise<{ bytes: number[]; shim: RunningShim; shimPidFile: number; code: number | null }> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-shim-" });
  const fifo = openExitFifo(dir);
  let shim: RunningShim | undefined;
  try {
    shim = await startShim({ stateDir: dir, mode: { kind: "exec", argv }, ...flags });
    const status = await shim.status;
    const bytes = [...await readFifoBytes(fifo.fd, 8, 300)];
    assert.equal(status.code, 0, shimLog(dir));
    const shimPidFile = Number(await Deno.readTextFile(`${dir}/shim-pid`));
    const code = bytes.length === 4
      ? new DataView(new Uint8Array(bytes).buffer).getInt32(0, true)
      : null;
    return { bytes, shim, shimPidFile, code };
  } finally {
    fifo.close();
    await stopShim(shim);
    await Deno.remove(dir, { recursive: true });
  }
}

withCc.test("test shim writes an exit code as one 4-byte native int", async () => {
  const r = await runUnderShim(["sh", "-c", "exit 7"]);
  assert.deepEqual(r.bytes, [...new Uint8Array(new Int32Array([7]).buffer)]);
  assert.equal(r.code, 7);
  assert.equal(r.shimPidFile, r.shim.shim.pid);
  assert.notEqual(r.shim.container.pid, r.shim.shim.pid);
});

withCc.test("test shim encodes death by a signal as 128 + signo", async () => {
  const r = await runUnderShim(["sh", "-c", "kill -9 $$"]);
  assert.equal(r.bytes.length, 4);
  assert.equal(r.code, 137);
});

withCc.test("test shim fault modes: no write, and raw bytes", async () => {
  assert.deepEqual((await runUnderShim(["true"], { noWrite: true })).bytes, []);
  assert.deepEqual((await runUnderShim(["true"], { writeBytes: "01ff02" })).bytes, [1, 255, 2]);
});

withCc.test("startShim reports a shim that cannot start its container, with its log", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-shim-" });
  const fifo = openExitFifo(dir);
  try {
    await assert.rejects(
      startShim({
        stateDir: dir,
        mode: { kind: "runc", runc: "/nonexistent/runc", id: "x", bundle: dir },
      }),
      /did not start its container \(it exited\).*\n.*exec \/nonexistent\/runc/s,
    );
  } finally {
    fifo.close();
    await Deno.remove(dir, { recursive: true });
  }
});
