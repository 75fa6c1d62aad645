/**
 * Groups work that arrives while earlier work is being written: the first item goes at once,
 * and whatever piles up during that write goes together in the next. A lone exit is written
 * with no added wait; a burst of a thousand costs a few commits instead of a thousand fsyncs.
 *
 * @module
 */

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** Runs `write` on batches of at most `max` items, one batch at a time, in arrival order. */
export class Batcher<I, O> {
  readonly #max: number;
  readonly #write: (items: I[]) => Promise<O[]>;
  readonly #queue: Waiting<I, O>[] = [];
  #writing = false;

  /**
   * @param max most items per call of `write`
   * @param write handles a batch; returns one result per item, in order
   */
  constructor(max: number, write: (items: I[]) => Promise<O[]>) {
    this.#max = max;
    this.#write = write;
  }

  /** Queues `item`; resolves with its result, or rejects with what its batch threw. */
  add(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#max);
        try {
          const results = await this.#write(batch.map((w) => w.item));
          batch.forEach((w, i) => w.resolve(results[i]!));
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}
