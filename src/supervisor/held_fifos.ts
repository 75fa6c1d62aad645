/**
 * Read ends opened ahead of the shim (`reaperd create-fifo`): the daemon opens the FIFO's read
 * end before the shim starts, so that the shim's blocking write-only open returns at once and
 * a status written before `monitor` arrives waits in the pipe. A read end that is never armed
 * is closed after a timeout, so a shim that never came cannot pin a descriptor forever.
 *
 * @module
 */

import * as libc from "../sys/libc.ts";
import { createExitFifo, openExitFifo } from "./exit_fifo.ts";

interface Held {
  fd: number;
  timer: ReturnType<typeof setTimeout>;
}

/** The held read ends, by FIFO path. */
export class HeldFifos {
  readonly #held = new Map<string, Held>();
  readonly #timeoutMs: number;
  readonly #onExpire: (fifo: string) => void;
  readonly #open: (fifo: string) => number;

  /**
   * @param timeoutMs how long a read end is held without being armed
   * @param onExpire told when one is released unarmed, for good (logs; the read end is done
   *   with)
   * @param open opens a FIFO's read end (default {@linkcode openExitFifo}; the daemon's opener
   *   also hands a copy to the service manager)
   */
  constructor(
    timeoutMs: number,
    onExpire: (fifo: string) => void = () => {},
    open: (fifo: string) => number = openExitFifo,
  ) {
    this.#timeoutMs = timeoutMs;
    this.#onExpire = onExpire;
    this.#open = open;
  }

  /** Whether the read end of `fifo` is held. */
  has(fifo: string): boolean {
    return this.#held.has(fifo);
  }

  /** How many read ends are held. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Creates the state dir and FIFO and holds its read end; holding one already held restarts
   * its timeout. Returns the FIFO's path.
   */
  hold(stateDir: string): string {
    const fifo = createExitFifo(stateDir);
    const held = this.#held.get(fifo);
    if (held !== undefined) {
      clearTimeout(held.timer);
      held.timer = this.#expireLater(fifo);
      return fifo;
    }
    const fd = this.#open(fifo);
    this.#held.set(fifo, { fd, timer: this.#expireLater(fifo) });
    return fifo;
  }

  /**
   * Holds a read end opened before (one handed back at start by the service manager), with a
   * fresh timeout. False, and nothing taken, when `fifo` is held already.
   */
  adopt(fifo: string, fd: number): boolean {
    if (this.#held.has(fifo)) return false;
    this.#held.set(fifo, { fd, timer: this.#expireLater(fifo) });
    return true;
  }

  /** Hands the held read end over to the caller (who then owns the fd), or null if none. */
  take(fifo: string): number | null {
    const held = this.#held.get(fifo);
    if (held === undefined) return null;
    clearTimeout(held.timer);
    this.#held.delete(fifo);
    return held.fd;
  }

  /** Closes every held read end. */
  closeAll(): void {
    for (const fifo of [...this.#held.keys()]) {
      const fd = this.take(fifo);
      if (fd !== null) libc.close(fd);
    }
  }

  #expireLater(fifo: string): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      const fd = this.take(fifo);
      if (fd === null) return;
      libc.close(fd);
      this.#onExpire(fifo);
    }, this.#timeoutMs);
    // A held read end alone must not keep a finished process alive.
    Deno.unrefTimer(timer as unknown as number);
    return timer;
  }
}
