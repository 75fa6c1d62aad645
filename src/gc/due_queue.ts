/**
 * A min-heap of (due time, id) that also knows each id's position, so an id can be moved or
 * removed in O(log n) and looked up in O(1). The collector keeps one of these and arms one
 * timer for its head, instead of scanning its whole list on every tick.
 *
 * @module
 */

/** One scheduled id. */
export interface Due {
  /** The id. */
  id: string;
  /** When it is due (whatever clock the owner uses). */
  at: number;
}

interface Slot extends Due {
  /** Insertion order: equal due times come out first in, first out. */
  order: number;
}

/**
 * Ids ordered by due time; each id at most once.
 *
 * @example
 * ```ts
 * import { DueQueue } from "./due_queue.ts";
 * const q = new DueQueue();
 * q.schedule("b", 20);
 * q.schedule("a", 10);
 * q.schedule("b", 5); // moves b ahead
 * console.assert(q.pop()?.id === "b" && q.peek()?.id === "a");
 * ```
 */
export class DueQueue {
  readonly #heap: Slot[] = [];
  readonly #index = new Map<string, number>();
  #order = 0;

  /** How many ids are scheduled. */
  get size(): number {
    return this.#heap.length;
  }

  /** Whether `id` is scheduled. */
  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** When `id` is due, or undefined when it is not scheduled. */
  dueAt(id: string): number | undefined {
    const i = this.#index.get(id);
    return i === undefined ? undefined : this.#heap[i]?.at;
  }

  /** Schedules `id` at `at`, moving it if it was already scheduled. */
  schedule(id: string, at: number): void {
    const i = this.#index.get(id);
    if (i === undefined) {
      this.#heap.push({ id, at, order: this.#order++ });
      this.#index.set(id, this.#heap.length - 1);
      this.#up(this.#heap.length - 1);
      return;
    }
    const slot = this.#heap[i]!;
    const earlier = at < slot.at;
    slot.at = at;
    slot.order = this.#order++;
    if (earlier) this.#up(i);
    else this.#down(i);
  }

  /** Unschedules `id`; returns whether it was scheduled. */
  remove(id: string): boolean {
    const i = this.#index.get(id);
    if (i === undefined) return false;
    this.#removeAt(i);
    return true;
  }

  /** The earliest due id, left in place; undefined when empty. */
  peek(): Due | undefined {
    const head = this.#heap[0];
    return head === undefined ? undefined : { id: head.id, at: head.at };
  }

  /** Removes and returns the earliest due id; undefined when empty. */
  pop(): Due | undefined {
    const head = this.#heap[0];
    if (head === undefined) return undefined;
    this.#removeAt(0);
    return { id: head.id, at: head.at };
  }

  /** Every scheduled id with its due time, earliest first (a copy; O(n log n)). */
  toArray(): Due[] {
    return [...this.#heap].sort(compare).map(({ id, at }) => ({ id, at }));
  }

  #removeAt(i: number): void {
    const last = this.#heap.pop()!;
    this.#index.delete(this.#heap.length === i ? last.id : this.#heap[i]!.id);
    if (i === this.#heap.length) return;
    this.#heap[i] = last;
    this.#index.set(last.id, i);
    this.#up(i);
    this.#down(this.#index.get(last.id)!);
  }

  #up(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compare(heap[i]!, heap[parent]!) >= 0) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && compare(heap[left]!, heap[least]!) < 0) least = left;
      if (right < heap.length && compare(heap[right]!, heap[least]!) < 0) least = right;
      if (least === i) return;
      this.#swap(i, least);
      i = least;
    }
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    const x = heap[a]!;
    const y = heap[b]!;
    heap[a] = y;
    heap[b] = x;
    this.#index.set(y.id, a);
    this.#index.set(x.id, b);
  }
}

function compare(a: Slot, b: Slot): number {
  return a.at - b.at || a.order - b.order;
}
