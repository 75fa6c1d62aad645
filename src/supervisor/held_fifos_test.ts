import assert from "node:assert/strict";
import * as libc from "../sys/libc.ts";
import { HeldFifos } from "./held_fifos.ts";

Deno.test("HeldFifos holds the read end so a shim's blocking open returns at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-held-" });
  const held = new HeldFifos(60_000);
  try {
    const fifo = held.hold(`${dir}/c1`);
    assert.equal(held.hold(`${dir}/c1`), fifo, "holding again is idempotent");
    assert.equal(held.size, 1);
    // A blocking O_WRONLY open would hang without a reader; `timeout` turns a hang into 124.
    const shim = await new Deno.Command("timeout", {
      args: ["5", "sh", "-c", `exec 3>"${fifo}"; printf '\\005\\000\\000\\000' >&3`],
    }).output();
    assert.equal(shim.code, 0);
    const fd = held.take(fifo)!;
    try {
      const buf = new Uint8Array(8);
      assert.equal(libc.read(fd, buf), 4);
      assert.deepEqual([...buf.subarray(0, 4)], [5, 0, 0, 0]);
    } finally {
      libc.close(fd);
    }
    assert.equal(held.take(fifo), null);
  } finally {
    held.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HeldFifos releases a read end that is never armed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-held-" });
  const expired: string[] = [];
  const held = new HeldFifos(50, (f) => expired.push(f));
  try {
    const fifo = held.hold(`${dir}/c2`);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(expired, [fifo]);
    assert.equal(held.size, 0);
    assert.equal(held.take(fifo), null);
  } finally {
    held.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});
