/**
 * One epoll loop for every fd reaperd watches (exit FIFOs, pidfds). A single `epoll_wait` is
 * pending on Deno's blocking pool at any time, so watching ten thousand fds costs ten thousand
 * descriptors and one thread, never a thread each. Ready fds are handled synchronously on the
 * main thread.
 *
 * @module
 */

import * as libc from "./libc.ts";

/** Called with the epoll event bits (EPOLL.IN, EPOLL.HUP, EPOLL.ERR) when its fd is ready. */
export type ReadyHandler = (events: number) => void;

const BATCH = 256;
const GEN_LIMIT = 1 << 20;
const FD_SPAN = 2 ** 32;

interface Watch {
  gen: number;
  handler: ReadyHandler;
}

/** The loop; {@linkcode EventLoop.start} it once, {@linkcode EventLoop.stop} it to release it. */
export class EventLoop {
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #watches = new Map<number, Watch>();
  readonly #onError: (error: unknown) => void;
  #gen = 0;
  #turns = 0;
  readonly #bell = new Uint8Array(8);
  #stopping = false;
  #done: Promise<void> | null = null;

  /** @param onError receives what a handler threw; the loop itself goes on. */
  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
    this.#epfd = libc.epollCreate();
    this.#wakeFd = libc.eventfd();
    libc.epollCtl(this.#epfd, libc.EPOLL.CTL_ADD, this.#wakeFd, libc.EPOLL.IN, 0);
  }

  /** How many fds are watched. */
  get size(): number {
    return this.#watches.size;
  }

  /** Watches `fd` for readability (HUP and ERR always come too). Does not take ownership. */
  add(fd: number, handler: ReadyHandler): void {
    if (this.#watches.has(fd)) throw new Error(`fd ${fd} is already watched`);
    // A generation in the event data keeps a stale event for a closed and reused fd number
    // from reaching the new owner within the same batch.
    const gen = this.#gen = (this.#gen + 1) % GEN_LIMIT;
    libc.epollCtl(this.#epfd, libc.EPOLL.CTL_ADD, fd, libc.EPOLL.IN, (gen + 1) * FD_SPAN + fd);
    this.#watches.set(fd, { gen, handler });
  }

  /**
   * Reports `fd` from now on only when something new happens to it (data written, a hang-up),
   * not for as long as it stays readable: for an owner that leaves bytes it cannot use yet in
   * the fd. Reported once more at once if it is readable now. Unknown fds are ignored.
   */
  onlyOnNew(fd: number): void {
    const watch = this.#watches.get(fd);
    if (watch === undefined) return;
    const events = libc.EPOLL.IN | libc.EPOLL.ET;
    libc.epollCtl(this.#epfd, libc.EPOLL.CTL_MOD, fd, events, (watch.gen + 1) * FD_SPAN + fd);
  }

  /** Stops watching `fd` (before the caller closes it). Unknown fds are ignored. */
  remove(fd: number): void {
    if (!this.#watches.delete(fd)) return;
    try {
      libc.epollCtl(this.#epfd, libc.EPOLL.CTL_DEL, fd, 0);
    } catch {
      // Already closed by its owner: the kernel dropped it from the set by itself.
    }
  }

  /**
   * How many times the loop came back from a wait. With {@linkcode EventLoop.poke} this tells
   * whether the loop still turns (a wait stuck behind a starved thread pool never returns).
   */
  get turns(): number {
    return this.#turns;
  }

  /** Rings the wake-up bell once: a loop that is alive comes back from its wait and turns. */
  poke(): void {
    if (this.#stopping) return;
    libc.write(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer));
  }

  /** Starts waiting for events. */
  start(): void {
    this.#done ??= this.#run();
  }

  /** Wakes the pending wait, ends the loop and closes its fds. Watched fds are not closed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    libc.write(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer));
    await this.#done;
    libc.close(this.#epfd);
    libc.close(this.#wakeFd);
    this.#watches.clear();
  }

  async #run(): Promise<void> {
    let buf = new Uint8Array(BATCH * libc.EPOLL_EVENT_SIZE);
    while (!this.#stopping) {
      let n = await libc.epollWaitAsync(this.#epfd, buf, -1);
      this.#turns++;
      // The buffer belonged to the pool thread until now; use a fresh one for the next wait.
      const ready = n > 0 ? libc.decodeEpollEvents(buf, n) : [];
      buf = new Uint8Array(BATCH * libc.EPOLL_EVENT_SIZE);
      this.#dispatch(ready);
      // Drain what else is ready without another trip through the pool.
      while (!this.#stopping && n === BATCH) {
        n = libc.epollWaitNow(this.#epfd, buf);
        this.#dispatch(libc.decodeEpollEvents(buf, n));
      }
    }
  }

  #dispatch(ready: libc.EpollReady[]): void {
    for (const { data, events } of ready) {
      if (data === 0) {
        // The wake-up bell: empty it (unless stopping, when it must stay rung for good).
        if (!this.#stopping) libc.read(this.#wakeFd, this.#bell);
        continue;
      }
      const fd = data % FD_SPAN;
      const watch = this.#watches.get(fd);
      if (watch === undefined || watch.gen !== Math.floor(data / FD_SPAN) - 1) continue;
      try {
        watch.handler(events);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}
