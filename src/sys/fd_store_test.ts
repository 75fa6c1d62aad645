import assert from "node:assert/strict";
import { FdStoreSocket, isValidFdName } from "./fd_store.ts";
import * as libc from "./libc.ts";

Deno.test("isValidFdName() takes what the manager takes: 1–255 printable characters, no ':'", () => {
  assert.ok(isValidFdName("runc/web-1"));
  assert.ok(isValidFdName("x".repeat(255)));
  assert.ok(!isValidFdName("x".repeat(256)));
  assert.ok(!isValidFdName(""));
  assert.ok(!isValidFdName("a:b"), "':' separates names in LISTEN_FDNAMES");
  assert.ok(!isValidFdName("a b"));
  assert.ok(!isValidFdName("a\nFDSTOREREMOVE=1"));
});

Deno.test("FdStoreSocket sends FDSTORE=1 with FDPOLL=0 and the fd, and FDSTOREREMOVE=1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fdstore-" });
  const path = `${dir}/notify.sock`;
  const listener = Deno.listenDatagram({ transport: "unixpacket", path });
  const errors: unknown[] = [];
  const socket = new FdStoreSocket(path, (e) => errors.push(e));
  const [r, w] = libc.pipe();
  try {
    socket.store("runc/web-1", r, () => r);
    socket.remove("runc/web-1");
    assert.throws(() => socket.store("a:b", r, () => r), /not a valid fd store name/);
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.equal(decode((await listener.receive())[0]), "FDSTORE=1\nFDPOLL=0\nFDNAME=runc/web-1");
    assert.equal(decode((await listener.receive())[0]), "FDSTOREREMOVE=1\nFDNAME=runc/web-1");
    assert.deepEqual(errors, []);
    assert.equal(socket.waiting, 0);
  } finally {
    socket.close();
    libc.close(r);
    libc.close(w);
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FdStoreSocket reports a manager it cannot reach and goes on", () => {
  const errors: unknown[] = [];
  const socket = new FdStoreSocket("/nonexistent/notify.sock", (e) => errors.push(e));
  socket.remove("runc/web-1");
  socket.close();
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /sendmsg.*ENOENT/);
});

function openFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  return n;
}

Deno.test("FdStoreSocket holds no descriptor while the manager's queue is full, and sends what is still open once it drains", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fdstore-" });
  const path = `${dir}/notify.sock`;
  // A manager that does not read: its queue takes net.unix.max_dgram_qlen datagrams.
  const listener = Deno.listenDatagram({ transport: "unixpacket", path });
  const errors: unknown[] = [];
  const events: string[] = [];
  const socket = new FdStoreSocket(path, {
    onError: (e) => errors.push(e),
    onFull: () => events.push("full"),
    onCaughtUp: () => events.push("caught up"),
  });
  const pipes = Array.from({ length: 200 }, () => libc.pipe());
  const open = new Set(pipes.map(([r]) => r));
  try {
    // The socket itself is opened by the first request.
    socket.remove("first");
    await listener.receive();
    const before = openFds();
    pipes.forEach(([r], i) => {
      socket.store(`n${i}`, r, () => open.has(r) ? r : null);
    });
    assert.ok(socket.waitingStores > 100, `${socket.waitingStores} waiting`);
    assert.equal(openFds(), before, "no copy held for a request that waits");
    assert.deepEqual(events, ["full"]);
    // Let go of before they could be sent: nothing to keep.
    for (const [r, w] of pipes.slice(150)) {
      open.delete(r);
      libc.close(r);
      libc.close(w);
    }
    // A remove replaces a store that never went.
    socket.remove("n149");
    const waiting = socket.waiting;
    const texts: string[] = [];
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    while (socket.waiting > 0 || texts.length < 150) {
      texts.push(decode((await listener.receive())[0]));
    }
    assert.ok(waiting > 0);
    assert.equal(texts.length, 150);
    assert.equal(texts.filter((t) => t.startsWith("FDSTORE=1")).length, 149);
    assert.ok(texts.includes("FDSTOREREMOVE=1\nFDNAME=n149"));
    assert.deepEqual(events, ["full", "caught up"]);
    assert.deepEqual(errors, []);
    assert.equal(openFds(), before - 100, "the 50 pipes closed above");
  } finally {
    socket.close();
    for (const [r, w] of pipes.slice(0, 150)) {
      libc.close(r);
      libc.close(w);
    }
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
