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
    socket.store("runc/web-1", r);
    socket.remove("runc/web-1");
    assert.throws(() => socket.store("a:b", r), /not a valid fd store name/);
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
