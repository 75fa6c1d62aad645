import assert from "node:assert/strict";
import { MAX_VALUE_BYTES, valueSize } from "./_size.ts";

/** The largest n for which `make(n)` is taken by Deno KV, read back and written again. */
async function largestTaken(kv: Deno.Kv, make: (n: number) => unknown): Promise<number> {
  let lo = 0;
  let hi = MAX_VALUE_BYTES;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      await kv.set(["v"], make(mid));
      // What the store writes is often what it read: an array may come back sparse.
      await kv.set(["v"], (await kv.get(["v"])).value);
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}

Deno.test("valueSize() is never below what Deno KV counts, also for values read back from it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const shapes: Array<(n: number) => unknown> = [
      (n) => "x".repeat(n),
      (n) => "\u20ac".repeat(Math.floor(n / 2)),
      (n) => ({ mounts: ["m".repeat(n)], pid: 12345, at: 1.5, known: true, exit: null }),
      (n) => ({ paths: Array.from({ length: Math.floor(n / 50) }, () => "p".repeat(50)) }),
      (n) => ({ a: { b: ["\u00e9".repeat(n)] } }),
    ];
    for (const [i, make] of shapes.entries()) {
      const n = await largestTaken(kv, make);
      // The first size refused must be estimated over the limit.
      let next = n + 1;
      while (JSON.stringify(make(next)) === JSON.stringify(make(n))) next++;
      assert.ok(valueSize(make(next)) > MAX_VALUE_BYTES, `shape ${i}: ${valueSize(make(next))}`);
    }
  } finally {
    kv.close();
  }
});
