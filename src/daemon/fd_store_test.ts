import assert from "node:assert/strict";
import { getLogger } from "../log.ts";
import { createExitFifo, openExitFifo } from "../supervisor/exit_fifo.ts";
import { HeldFifos } from "../supervisor/held_fifos.ts";
import { isValidFdName } from "../sys/fd_store.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord } from "../types.ts";
import { fdNameOf, fifoOfName, FifoReadEnds } from "./fd_store.ts";

const ROOT = "/var/run/isulad";
const log = getLogger("fd-store-test");

Deno.test("fdNameOf() names a FIFO by its state dir, and hashes what does not fit", () => {
  const fifo = `${ROOT}/runc/web-1/exit_fifo`;
  assert.equal(fdNameOf(ROOT, fifo), "runc/web-1");
  assert.equal(fifoOfName(ROOT, "runc/web-1"), fifo);

  const long = `${ROOT}/runc/${"a".repeat(240)}/exit_fifo`;
  const hashed = fdNameOf(ROOT, long);
  assert.match(hashed, /^#[0-9a-f]{64}$/);
  assert.notEqual(hashed, fdNameOf(ROOT, `${ROOT}/runc/${"a".repeat(241)}/exit_fifo`));
  assert.equal(fifoOfName(ROOT, hashed), null, "a hash maps back through the fd's path");

  for (const odd of [`${ROOT}/runc/a:b/exit_fifo`, `/elsewhere/runc/x/exit_fifo`]) {
    const name = fdNameOf(ROOT, odd);
    assert.match(name, /^#/);
    assert.ok(isValidFdName(name));
  }
  assert.equal(fifoOfName(ROOT, "runc/../../etc"), null);
  assert.equal(fifoOfName(ROOT, "unknown"), null);
});

/** Records what would be sent to the manager. */
class Recorder {
  readonly sent: string[] = [];
  store(name: string) {
    this.sent.push(`store ${name}`);
  }
  remove(name: string) {
    this.sent.push(`remove ${name}`);
  }
}

async function withRoot(fn: (root: string) => Promise<void> | void): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "reaperd-fdstore-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("FifoReadEnds keeps one copy per FIFO and removes it when its last read end is done", async () => {
  await withRoot((root) => {
    const socket = new Recorder();
    const ends = new FifoReadEnds({ stateRoot: root, socket, log });
    const fifo = createExitFifo(`${root}/runc/c1`);
    const a = ends.open(fifo);
    const b = ends.open(fifo);
    assert.deepEqual(socket.sent, ["store runc/c1"]);
    libc.close(a);
    ends.done(fifo);
    assert.deepEqual(socket.sent, ["store runc/c1"], "another read end is still open");
    libc.close(b);
    ends.done(fifo);
    ends.done(fifo);
    assert.deepEqual(socket.sent, ["store runc/c1", "remove runc/c1"]);
  });
});

Deno.test("FifoReadEnds adopts a handed-back fd instead of reopening, and refuses one that is not a FIFO", async () => {
  await withRoot(async (root) => {
    const socket = new Recorder();
    const fifo = createExitFifo(`${root}/runc/c1`);
    const kept = openExitFifo(fifo);
    await Deno.writeTextFile(`${root}/file`, "x");
    const file = libc.open(`${root}/file`, libc.O.RDONLY | libc.O.CLOEXEC);
    const ends = new FifoReadEnds({
      stateRoot: root,
      socket,
      log,
      handedBack: [{ fd: kept, name: "runc/c1" }, { fd: file, name: "runc/c2" }],
    });
    assert.equal(ends.open(fifo), kept);
    assert.deepEqual(socket.sent, [], "a handed-back fd is already in the store");
    createExitFifo(`${root}/runc/c2`);
    const fresh = ends.open(`${root}/runc/c2/exit_fifo`);
    assert.equal(libc.fileTypeOfFd(fresh), libc.S_IFIFO, "the file was closed, the FIFO opened");
    assert.deepEqual(socket.sent, ["remove runc/c2", "store runc/c2"]);
    libc.close(kept);
    libc.close(fresh);
  });
});

Deno.test("FifoReadEnds.settle() holds again what create-fifo held and releases the rest", async () => {
  await withRoot(async (root) => {
    const socket = new Recorder();
    const heldFifo = createExitFifo(`${root}/runc/held`);
    const doneFifo = createExitFifo(`${root}/runc/done`);
    const goneFifo = createExitFifo(`${root}/runc/gone`);
    const fds = [heldFifo, doneFifo, goneFifo].map(openExitFifo);
    await Deno.remove(`${root}/runc/gone`, { recursive: true });
    const ends = new FifoReadEnds({
      stateRoot: root,
      socket,
      log,
      handedBack: [
        { fd: fds[0]!, name: "runc/held" },
        { fd: fds[1]!, name: "runc/done" },
        { fd: fds[2]!, name: "runc/gone" },
      ],
    });
    const records = new Map<string, Partial<ContainerRecord>>([
      ["done", { stateDir: `${root}/runc/done`, state: "stopping" }],
    ]);
    const held = new HeldFifos(60_000);
    try {
      const result = await ends.settle(
        { get: (id) => Promise.resolve((records.get(id) ?? null) as ContainerRecord | null) },
        held,
      );
      assert.deepEqual(result, { held: 1, discarded: 2 });
      assert.equal(held.take(heldFifo), fds[0]);
      assert.deepEqual(socket.sent.sort(), ["remove runc/done", "remove runc/gone"]);
      assert.equal(ends.untaken, 0);
      libc.close(fds[0]!);
    } finally {
      held.closeAll();
    }
  });
});
