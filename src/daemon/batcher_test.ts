import assert from "node:assert/strict";
import { Batcher } from "./batcher.ts";

Deno.test("Batcher writes a lone item at once and groups what arrives meanwhile", async () => {
  const calls: number[][] = [];
  let release: () => void = () => {};
  const batcher = new Batcher<number, number>(3, async (items) => {
    calls.push(items);
    if (calls.length === 1) await new Promise<void>((r) => release = r);
    return items.map((i) => i * 10);
  });
  const first = batcher.add(1);
  assert.deepEqual(calls, [[1]], "the first item did not wait");
  const rest = [2, 3, 4, 5].map((i) => batcher.add(i));
  release();
  assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50]);
  assert.deepEqual(calls, [[1], [2, 3, 4], [5]]);
});

Deno.test("Batcher rejects the items of a failed batch only", async () => {
  let n = 0;
  const batcher = new Batcher<string, string>(10, (items) => {
    n++;
    return n === 1 ? Promise.reject(new Error("disk full")) : Promise.resolve(items);
  });
  const failed = batcher.add("a");
  await assert.rejects(failed, /disk full/);
  assert.equal(await batcher.add("b"), "b");
});
