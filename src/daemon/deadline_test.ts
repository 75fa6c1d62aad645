import assert from "node:assert/strict";
import { Deadline } from "./deadline.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("Deadline expires once, after the time set last; moved later, it waits for that", async () => {
  const expired: number[] = [];
  const started = performance.now();
  const deadline = new Deadline(() => expired.push(performance.now() - started));
  deadline.in(30);
  for (let i = 0; i < 5; i++) {
    await sleep(15);
    deadline.in(30);
  }
  assert.deepEqual(expired, []);
  await sleep(80);
  assert.equal(expired.length, 1);
  assert.ok(expired[0]! >= 100, `expired after ${expired[0]} ms`);
  deadline.dispose();
});

Deno.test("Deadline moved earlier expires at the earlier time; cleared, it does not expire", async () => {
  let expired = 0;
  const deadline = new Deadline(() => expired++);
  deadline.in(10_000);
  deadline.in(20);
  await sleep(60);
  assert.equal(expired, 1);
  deadline.in(20);
  deadline.clear();
  await sleep(60);
  assert.equal(expired, 1);
  // Set again after a clear: it expires again.
  deadline.in(10);
  await sleep(50);
  assert.equal(expired, 2);
  deadline.dispose();
});

Deno.test("Deadline.dispose() leaves no timer behind", () => {
  const deadline = new Deadline(() => {
    throw new Error("expired after dispose");
  });
  deadline.in(10_000);
  deadline.dispose();
  // The test's timer sanitizer fails the test if a timer is left.
});
