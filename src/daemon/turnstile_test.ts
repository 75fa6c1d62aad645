import assert from "node:assert/strict";
import { type ExitPathState, type Release, Turnstile } from "./turnstile.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("Turnstile: at most count turns out, handed out in the order asked", async () => {
  const turns = new Turnstile(2);
  const order: number[] = [];
  const releases: Release[] = [];
  const asked = Array.from({ length: 6 }, (_, i) =>
    turns.take().then((release) => {
      order.push(i);
      releases.push(release);
    }));
  await tick();
  assert.deepEqual(order, [0, 1]);
  assert.equal(turns.active, 2);
  assert.equal(turns.waiting, 4);
  // Giving a turn back twice frees one turn, not two.
  const second = releases.splice(1, 1)[0]!;
  second();
  second();
  await tick();
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(turns.active, 2);
  for (let given = 1; given < 6; given++) {
    releases.shift()!();
    await tick();
  }
  await Promise.all(asked);
  assert.equal(turns.active, 0);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  assert.equal(turns.waiting, 0);
});

Deno.test("Turnstile.run() gives the turn back when the work throws", async () => {
  const turns = new Turnstile(1);
  await assert.rejects(turns.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(turns.active, 0);
  assert.equal(await turns.run(() => Promise.resolve(7)), 7);
});

Deno.test("Turnstile with exits: no turn while an exit is recorded, one wait for every waiter", async () => {
  let finish = () => {};
  let waits = 0;
  const exits: ExitPathState & { recordingExits: boolean } = {
    recordingExits: true,
    exitsRecorded: () => {
      waits++;
      return new Promise<void>((resolve) => finish = resolve);
    },
  };
  const turns = new Turnstile(8, exits);
  const order: number[] = [];
  const asked = Array.from({ length: 20 }, (_, i) =>
    turns.take().then(async (release) => {
      order.push(i);
      await tick();
      release();
    }));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(order, []);
  assert.equal(waits, 1);
  exits.recordingExits = false;
  finish();
  await Promise.resolve();
  await Promise.resolve();
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  await Promise.all(asked);
  assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(waits, 1);
});

Deno.test("Turnstile with exits: a stream of exits slows the queue but every waiter gets its turn", async () => {
  let waits = 0;
  // Always recording; each wait is bounded (here 5 ms).
  const exits: ExitPathState = {
    recordingExits: true,
    exitsRecorded: () => {
      waits++;
      return new Promise<void>((resolve) => setTimeout(resolve, 5));
    },
  };
  const turns = new Turnstile(2, exits);
  const order: number[] = [];
  await Promise.all(Array.from({ length: 10 }, (_, i) =>
    turns.run(async () => {
      order.push(i);
      await tick();
    })));
  assert.deepEqual(order, Array.from({ length: 10 }, (_, i) => i));
  // One wait per round of two turns, not one per waiter.
  assert.ok(waits <= 6, `${waits} waits`);
});
