import assert from "node:assert/strict";
import { getLogger } from "../log.ts";
import { createExitFifo, openExitFifo } from "../supervisor/exit_fifo.ts";
import { HeldFifos } from "../supervisor/held_fifos.ts";
import { isValidFdName } from "../sys/fd_store.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord } from "../types.ts";
import { FD_NAME_LENGTH, fdName, FifoReadEnds } from "./fd_store.ts";

const log = getLogger("fd-store-test");

Deno.test("fdName() gives unique three-character names LISTEN_FDNAMES can carry by the 32,000", () => {
  const names = new Set(Array.from({ length: 62 ** 3 }, (_, i) => fdName(i)));
  assert.equal(names.size, 62 ** 3);
  for (const name of [fdName(0), fdName(62 ** 3 - 1)]) {
    assert.equal(name.length, FD_NAME_LENGTH);
    assert.ok(isValidFdName(name));
  }
  // The manager passes every name in one environment string; the kernel's limit is 128 KiB.
  const listenFdNames = `LISTEN_FDNAMES=${[...names].slice(0, 32_000).join(":")}`;
  assert.ok(listenFdNames.length < 128 * 1024, `${listenFdNames.length} bytes`);
});

/** Records what would be sent to the manager. */
class Recorder {
  readonly sent: string[] = [];
  readonly waitingStores = 0;
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
    assert.deepEqual(socket.sent, ["store 000"]);
    libc.close(a);
    ends.done(fifo);
    assert.deepEqual(socket.sent, ["store 000"], "another read end is still open");
    libc.close(b);
    ends.done(fifo);
    ends.done(fifo);
    assert.deepEqual(socket.sent, ["store 000", "remove 000"]);
    const other = ends.open(createExitFifo(`${root}/runc/c2`));
    assert.deepEqual(socket.sent.at(-1), "store 001", "each FIFO has its own name");
    libc.close(other);
  });
});

Deno.test("FifoReadEnds adopts a handed-back fd instead of reopening, and refuses one that is not a FIFO", async () => {
  await withRoot(async (root) => {
    const socket = new Recorder();
    const fifo = createExitFifo(`${root}/runc/c1`);
    const kept = openExitFifo(fifo);
    // A regular file where a FIFO belongs, replaced by a FIFO while the daemon was down.
    await Deno.mkdir(`${root}/runc/c2`);
    await Deno.writeTextFile(`${root}/runc/c2/exit_fifo`, "x");
    const file = libc.open(`${root}/runc/c2/exit_fifo`, libc.O.RDONLY | libc.O.CLOEXEC);
    const ends = new FifoReadEnds({
      stateRoot: root,
      socket,
      log,
      handedBack: [{ fd: kept, name: "000" }, { fd: file, name: "001" }],
    });
    assert.equal(ends.untaken, 2);
    assert.equal(ends.open(fifo), kept);
    assert.deepEqual(socket.sent, [], "a handed-back fd is already in the store");
    await Deno.remove(`${root}/runc/c2/exit_fifo`);
    // Unlinked now, but it was not when it was handed back: the type check refuses it.
    const fresh = ends.open(createExitFifo(`${root}/runc/c2`));
    assert.equal(libc.fileTypeOfFd(fresh), libc.S_IFIFO);
    assert.deepEqual(socket.sent, ["remove 001", "store 001"]);
    assert.equal(ends.untaken, 0);
    libc.close(kept);
    libc.close(fresh);
  });
});

Deno.test("FifoReadEnds keeps one fd per handed-back name and never removes the name of one it keeps", async () => {
  await withRoot(async (root) => {
    const socket = new Recorder();
    const gone = createExitFifo(`${root}/runc/gone`);
    const goneFd = openExitFifo(gone);
    await Deno.remove(gone);
    const first = createExitFifo(`${root}/runc/c1`);
    const second = createExitFifo(`${root}/runc/c2`);
    const firstFd = openExitFifo(first);
    const secondFd = openExitFifo(second);
    // The manager's own copy, which keeps the pipe and its waiting status alive.
    const managerCopy = openExitFifo(second);
    const writer = libc.open(second, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC);
    libc.write(writer, new Uint8Array([7, 0, 0, 0]));
    libc.close(writer);
    // Two copies under one name (a remove the manager never got): removing the name would
    // drop both, so only the first is kept and the name stays until it is done with.
    const ends = new FifoReadEnds({
      stateRoot: root,
      socket,
      log,
      handedBack: [
        { fd: goneFd, name: "000" },
        { fd: firstFd, name: "000" },
        { fd: secondFd, name: "000" },
      ],
    });
    assert.deepEqual(socket.sent, [], "the name of a kept fd is not removed");
    assert.equal(ends.untaken, 1);
    assert.equal(ends.open(first), firstFd);
    const fresh = ends.open(second);
    assert.notEqual(fresh, secondFd);
    assert.deepEqual(socket.sent, ["store 001"], "the second FIFO gets a name of its own");
    const waiting = new Uint8Array(8);
    assert.equal(libc.read(fresh, waiting), 4, "the status waiting in it was not read out");
    libc.close(managerCopy);
    libc.close(firstFd);
    ends.done(first);
    assert.deepEqual(socket.sent, ["store 001", "remove 000"]);
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
        { fd: fds[0]!, name: "aaa" },
        { fd: fds[1]!, name: "bbb" },
        { fd: fds[2]!, name: "ccc" },
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
      assert.deepEqual(result, { held: 1, discarded: 1 });
      assert.equal(held.take(heldFifo), fds[0]);
      // "gone" was unlinked while the daemon was down: let go at once.
      assert.deepEqual(socket.sent, ["remove ccc", "remove bbb"]);
      assert.equal(ends.untaken, 0);
      libc.close(fds[0]!);
    } finally {
      held.closeAll();
    }
  });
});

Deno.test("FifoReadEnds matches a handed-back fd through a state root reached by a symlink", async () => {
  await withRoot(async (real) => {
    const link = `${real}-link`;
    await Deno.symlink(real, link);
    try {
      const fifo = createExitFifo(`${link}/runc/c1`);
      const kept = openExitFifo(fifo);
      // /proc/self/fd shows the resolved path, as /var/run/isulad shows as /run/isulad.
      assert.equal(Deno.readLinkSync(`/proc/self/fd/${kept}`), `${real}/runc/c1/exit_fifo`);
      const ends = new FifoReadEnds({
        stateRoot: link,
        socket: new Recorder(),
        log,
        handedBack: [{ fd: kept, name: "000" }],
      });
      assert.equal(ends.open(fifo), kept);
      libc.close(kept);
    } finally {
      await Deno.remove(link);
    }
  });
});
