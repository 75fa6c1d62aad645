import assert from "node:assert/strict";
import * as libc from "../sys/libc.ts";
import { consumeFifo, FifoPeek } from "./fifo_peek.ts";

const FLAGS = libc.O.NONBLOCK | libc.O.CLOEXEC;

async function withFifo(fn: (fifo: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-peek-" });
  try {
    libc.mkfifo(`${dir}/exit_fifo`, 0o600);
    fn(`${dir}/exit_fifo`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("FifoPeek tells a waiting writer from none, and leaves what the FIFO holds in it", async () => {
  await withFifo((fifo) => {
    const peek = new FifoPeek();
    const reader = libc.open(fifo, libc.O.RDONLY | FLAGS);
    try {
      assert.equal(peek.peek(reader), 0, "empty, no writer");
      const writer = libc.open(fifo, libc.O.WRONLY | FLAGS);
      assert.equal(peek.peek(reader), null, "empty, a writer holds it");
      libc.write(writer, new Uint8Array([3, 0, 0, 0, 0xff, 0xee]));
      libc.close(writer);
      for (let look = 0; look < 2; look++) {
        assert.equal(peek.peek(reader), 6);
        assert.deepEqual([...peek.head], [3, 0, 0, 0, 0xff]);
      }
      const consumed = consumeFifo(reader, new Uint8Array(2));
      assert.deepEqual([consumed.count, [...consumed.after]], [6, [0xff, 0xee]]);
      assert.equal(peek.peek(reader), 0, "read out");
    } finally {
      libc.close(reader);
      peek.close();
    }
  });
});
