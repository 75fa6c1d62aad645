/**
 * Looking into an exit FIFO without taking its status out, and taking it out once the exit is
 * durable. A status read out of a FIFO is gone from it: a daemon killed before recording it
 * would leave the next one nothing to read. So the FIFO is copied with tee(2) into a private
 * pipe, which leaves its bytes in place, and only read out ({@linkcode consumeFifo}) once the
 * exit is recorded.
 *
 * @module
 */

import * as libc from "../sys/libc.ts";
import { STATUS_SIZE } from "./exit_status.ts";

/** A FIFO holds at most this much unless resized; tee copies up to it. */
const PEEK_MAX = 65_536;
/** Bytes consumed from a FIFO after its status, at most (the rest goes with the close). */
const CONSUME_MAX = 1 << 20;
/** Bytes past the status kept to describe them. */
const AFTER_KEPT = 16;

/** Copies what FIFOs hold through one private pipe, consuming nothing. */
export class FifoPeek {
  #pipe: [number, number] | null = null;
  /** What one tee copies fits in one read: a FIFO full of garbage costs one call, not 1,024. */
  readonly #chunk = new Uint8Array(PEEK_MAX);
  /**
   * The first bytes the last {@linkcode FifoPeek.peek} found: enough to decode a status and
   * tell garbage after it. One buffer for every FIFO, valid until the next peek.
   */
  readonly head: Uint8Array<ArrayBuffer> = new Uint8Array(STATUS_SIZE + 1);

  /** Makes the private pipe now rather than at the first peek (which could then lack an fd). */
  open(): void {
    this.#pipe ??= libc.pipe();
  }

  /**
   * What the FIFO of read end `fd` holds, left in it: null when it is empty and a writer holds
   * it, else how many bytes it holds (0: empty, and no writer has it open), the first of which
   * are in {@linkcode FifoPeek.head}.
   */
  peek(fd: number): number | null {
    const [peekRead, peekWrite] = this.#pipe ??= libc.pipe();
    const copied = libc.tee(fd, peekWrite, PEEK_MAX);
    if (copied === null) return null;
    if (copied === 0) return 0;
    let total = 0;
    // Empty the private pipe, keeping the first bytes: they are the whole FIFO's content.
    for (;;) {
      const n = libc.read(peekRead, this.#chunk);
      if (n === null || n === 0) break;
      const room = this.head.length - total;
      if (room > 0) this.head.set(this.#chunk.subarray(0, Math.min(n, room)), total);
      total += n;
    }
    return total;
  }

  /** Closes the private pipe. */
  close(): void {
    if (this.#pipe !== null) { for (const fd of this.#pipe) libc.close(fd); }
    this.#pipe = null;
  }
}

/** What {@linkcode consumeFifo} read out. */
export interface Consumed {
  /** How many bytes. */
  count: number;
  /** The first of those past the status, to describe them. */
  after: Uint8Array;
}

/**
 * Reads out what the FIFO of read end `fd` holds (its status, once the exit is durable) into
 * `buf`, at most 1 MiB: the rest goes with the close. Does not close `fd`.
 */
export function consumeFifo(fd: number, buf: Uint8Array<ArrayBuffer>): Consumed {
  let count = 0;
  const after: number[] = [];
  while (count < CONSUME_MAX) {
    const n = libc.read(fd, buf);
    if (n === null || n === 0) break;
    for (let i = 0; i < n && after.length < AFTER_KEPT; i++) {
      if (count + i >= STATUS_SIZE) after.push(buf[i]!);
    }
    count += n;
  }
  return { count, after: new Uint8Array(after) };
}
