import assert from "node:assert/strict";
import { getLogger } from "../log.ts";
import { EventLoop } from "../sys/event_loop.ts";
import { Liveness } from "./liveness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = getLogger("watchdog-test");

async function withKv(fn: (kv: Deno.Kv, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/t.db`);
  try {
    await fn(kv, dir);
  } finally {
    try {
      kv.close();
    } catch {
      // Closed by the test.
    }
    await Deno.remove(dir, { recursive: true });
  }
}

/** A liveness with a 200 ms staleness bound, the same in every test. */
function livenessOf(loop: EventLoop, probeStore: () => Promise<unknown>): Liveness {
  return new Liveness({ loop, probeStore, staleMs: 200, log });
}

/** Checks every 50 ms for `ms`; returns each answer. */
async function watch(liveness: Liveness, ms: number): Promise<boolean[]> {
  const answers: boolean[] = [];
  for (let t = 0; t < ms; t += 50) {
    await sleep(50);
    answers.push(liveness.check());
  }
  return answers;
}

Deno.test("Liveness: alive while a running epoll loop turns when poked and the store answers", async () => {
  await withKv(async (kv) => {
    const loop = new EventLoop(() => {});
    loop.start();
    try {
      const liveness = livenessOf(loop, () => kv.get(["liveness-probe"]));
      const before = loop.turns;
      assert.ok((await watch(liveness, 600)).every((a) => a));
      assert.ok(loop.turns > before + 5, `the loop turned ${loop.turns - before} times`);
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("Liveness: not alive once the epoll loop no longer turns, though the main thread runs", async () => {
  await withKv(async (kv) => {
    // A loop whose wait never comes back: created, never started.
    const loop = new EventLoop(() => {});
    try {
      const liveness = livenessOf(loop, () => kv.get(["liveness-probe"]));
      const answers = await watch(liveness, 500);
      assert.equal(answers[0], true);
      assert.equal(answers.at(-1), false);
    } finally {
      await loop.stop().catch(() => {});
    }
  });
});

Deno.test("Liveness: not alive once the store stops answering; alive again when it answers", async () => {
  await withKv(async (kv) => {
    const loop = new EventLoop(() => {});
    loop.start();
    let store = kv;
    try {
      const liveness = livenessOf(loop, () => store.get(["liveness-probe"]));
      assert.ok((await watch(liveness, 200)).every((a) => a));
      kv.close();
      assert.equal((await watch(liveness, 400)).at(-1), false);
      const dir = await Deno.makeTempDir();
      store = await Deno.openKv(`${dir}/again.db`);
      try {
        assert.equal((await watch(liveness, 300)).at(-1), true);
      } finally {
        store.close();
        await Deno.remove(dir, { recursive: true });
      }
    } finally {
      await loop.stop();
    }
  });
});
