import assert from "node:assert/strict";
import { SysError } from "./errno.ts";
import { kill, pidfdOpen } from "./libc.ts";
import { identify, isAlive } from "./proc.ts";
import { Signal, signalProcess } from "./signal.ts";

Deno.test("signalProcess() never signals a pid whose start time does not match", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const id = identify(child.pid)!;
    assert.equal(
      signalProcess({ pid: id.pid, startTime: id.startTime + 7 }, Signal.SIGKILL),
      "gone",
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(isAlive(id), "the mismatched process was left alone");
    assert.equal(signalProcess(id, Signal.SIGKILL), "signalled");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    assert.equal(signalProcess(id, Signal.SIGKILL), "gone");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  }
});

Deno.test("signalProcess() and kill() refuse pid 0, -1 and negative pids", () => {
  for (const pid of [0, -1, -5]) {
    assert.equal(signalProcess({ pid, startTime: 0 }, Signal.SIGKILL), "invalid");
    assert.throws(() => kill(pid, 0), SysError);
    assert.throws(() => pidfdOpen(pid), SysError);
  }
});
