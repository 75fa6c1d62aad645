import assert from "node:assert/strict";
import { DueQueue } from "./due_queue.ts";

Deno.test("DueQueue pops ids by due time, first in first out on ties", () => {
  const q = new DueQueue();
  q.schedule("c", 30);
  q.schedule("a", 10);
  q.schedule("b", 20);
  q.schedule("a2", 10);
  assert.equal(q.size, 4);
  assert.deepEqual(q.peek(), { id: "a", at: 10 });
  assert.deepEqual([q.pop(), q.pop(), q.pop(), q.pop(), q.pop()], [
    { id: "a", at: 10 },
    { id: "a2", at: 10 },
    { id: "b", at: 20 },
    { id: "c", at: 30 },
    undefined,
  ]);
});

Deno.test("DueQueue keeps each id once: scheduling again moves it", () => {
  const q = new DueQueue();
  q.schedule("a", 10);
  q.schedule("b", 20);
  q.schedule("a", 40);
  assert.equal(q.size, 2);
  assert.equal(q.dueAt("a"), 40);
  assert.equal(q.peek()?.id, "b");
  q.schedule("a", 5);
  assert.equal(q.peek()?.id, "a");
  assert.equal(q.remove("a"), true);
  assert.equal(q.remove("a"), false);
  assert.equal(q.has("a"), false);
  assert.equal(q.dueAt("a"), undefined);
  assert.deepEqual(q.toArray(), [{ id: "b", at: 20 }]);
});

Deno.test("DueQueue agrees with a sorted list under random operations", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const q = new DueQueue();
  const model = new Map<string, number>();
  for (let step = 0; step < 5_000; step++) {
    const id = `c${Math.floor(random() * 200)}`;
    const op = random();
    if (op < 0.5) {
      const at = Math.floor(random() * 1_000);
      q.schedule(id, at);
      model.set(id, at);
    } else if (op < 0.7) {
      assert.equal(q.remove(id), model.delete(id));
    } else if (op < 0.9) {
      const popped = q.pop();
      if (model.size === 0) {
        assert.equal(popped, undefined);
      } else {
        const least = Math.min(...model.values());
        assert.equal(popped?.at, least);
        assert.equal(model.get(popped!.id), least);
        model.delete(popped!.id);
      }
    } else {
      assert.equal(q.dueAt(id), model.get(id));
    }
    assert.equal(q.size, model.size);
  }
  const drained: number[] = [];
  for (let d = q.pop(); d !== undefined; d = q.pop()) drained.push(d.at);
  assert.deepEqual(drained, [...model.values()].sort((a, b) => a - b));
});
