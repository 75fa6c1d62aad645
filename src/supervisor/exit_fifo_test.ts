import assert from "node:assert/strict";
import { openFdCount } from "../sys/fd_limit.ts";
import * as libc from "../sys/libc.ts";
import { createExitFifo, ExitFifoError, exitFifoName, openExitFifo } from "./exit_fifo.ts";

async function withTempDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fifo-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("exitFifoName() joins exit_fifo and rejects bad state dirs", () => {
  assert.equal(exitFifoName("/var/run/isulad/runc/abc"), "/var/run/isulad/runc/abc/exit_fifo");
  assert.equal(exitFifoName("/s/"), "/s/exit_fifo");
  assert.throws(() => exitFifoName("relative/dir"), ExitFifoError);
  assert.throws(() => exitFifoName("/a/../b"), ExitFifoError);
  assert.throws(() => exitFifoName("/a\0b"), ExitFifoError);
  assert.throws(() => exitFifoName("/" + "x".repeat(5000)), /too long/);
});

Deno.test("createExitFifo() makes a 0700 dir and a 0600 FIFO, and reuses an existing FIFO", async () => {
  await withTempDir((dir) => {
    const stateDir = `${dir}/runc/c1`;
    const fifo = createExitFifo(stateDir);
    assert.equal(fifo, `${stateDir}/exit_fifo`);
    assert.equal(Deno.statSync(stateDir).mode! & 0o777, 0o700);
    const info = Deno.lstatSync(fifo);
    assert.ok(info.isFifo);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.equal(createExitFifo(stateDir), fifo);
    assert.equal(Deno.lstatSync(fifo).ino, info.ino);
  });
});

Deno.test("createExitFifo() refuses a state dir or FIFO path that is something else", async () => {
  await withTempDir((dir) => {
    Deno.mkdirSync(`${dir}/real`);
    Deno.symlinkSync(`${dir}/real`, `${dir}/link`);
    assert.throws(() => createExitFifo(`${dir}/link`), /is a symlink, not a directory/);
    Deno.mkdirSync(`${dir}/c2`);
    Deno.writeTextFileSync(`${dir}/c2/exit_fifo`, "");
    assert.throws(() => createExitFifo(`${dir}/c2`), /exists and is a regular file/);
  });
});

Deno.test("openExitFifo() opens only a real FIFO: symlink, regular file, missing are errors", async () => {
  await withTempDir((dir) => {
    const fifo = createExitFifo(`${dir}/ok`);
    Deno.writeTextFileSync(`${dir}/file`, "x");
    Deno.symlinkSync(fifo, `${dir}/link`);
    const before = openFdCount();
    assert.throws(() => openExitFifo(`${dir}/link`), /is a symlink, not a FIFO/);
    assert.throws(() => openExitFifo(`${dir}/file`), /is a regular file, not a FIFO/);
    assert.throws(() => openExitFifo(`${dir}/missing`), /does not exist/);
    assert.throws(() => openExitFifo("/dev/null"), /is a device, not a FIFO/);
    assert.equal(openFdCount(), before, "a refused open leaves no fd behind");

    const fd = openExitFifo(fifo);
    try {
      assert.ok(fd > 2);
      assert.equal(libc.read(fd, new Uint8Array(4)), 0, "no writer yet: end of file, no block");
    } finally {
      libc.close(fd);
    }
  });
});
