/**
 * Whether the daemon truly runs, for the systemd watchdog. WATCHDOG=1 is sent from a timer on
 * the main thread, so a main thread that is stuck sends nothing; that is not enough, since the
 * exit path also needs the supervisor's epoll loop (whose wait runs on a pool thread that a
 * flood of hung filesystem calls can starve) and the store (whose calls can hang on a dead
 * disk) to answer. Each check pokes the epoll loop and reads the store; the daemon counts as
 * alive only while both answered within `staleMs`. A check never waits: it reports what has
 * answered by now and starts the next probe.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { errorMessage } from "../error_message.ts";

/** The epoll loop as seen from here: poke it, and count its turns. */
export interface LoopProbe {
  readonly turns: number;
  poke(): void;
}

/** Options of {@linkcode Liveness}. */
export interface LivenessOptions {
  loop: LoopProbe;
  /** One cheap store read; settles when the store answered. */
  probeStore: () => Promise<unknown>;
  /** How long a part may go without answering and the daemon still count as alive (ms). */
  staleMs: number;
  log: Logger;
  /** Monotonic clock (ms); `performance.now` by default. */
  now?: () => number;
}

/** Tracks the parts' answers; call {@linkcode Liveness.check} from the watchdog's timer. */
export class Liveness {
  readonly #loop: LoopProbe;
  readonly #probeStore: () => Promise<unknown>;
  readonly #staleMs: number;
  readonly #log: Logger;
  readonly #now: () => number;
  #turnsAtPoke: number;
  #loopAnsweredAt: number;
  #storeAnsweredAt: number;
  #storeProbing = false;
  #lastStoreError: string | null = null;
  #alive = true;

  constructor(options: LivenessOptions) {
    this.#loop = options.loop;
    this.#probeStore = options.probeStore;
    this.#staleMs = options.staleMs;
    this.#log = options.log;
    this.#now = options.now ?? (() => performance.now());
    const now = this.#now();
    this.#loopAnsweredAt = now;
    this.#storeAnsweredAt = now;
    this.#turnsAtPoke = this.#loop.turns;
    this.#pokeLoop();
    this.#startStoreProbe();
  }

  /** True while the epoll loop and the store both answered within `staleMs`. */
  check(): boolean {
    const now = this.#now();
    if (this.#loop.turns !== this.#turnsAtPoke) this.#loopAnsweredAt = now;
    this.#pokeLoop();
    this.#startStoreProbe();
    const problems: string[] = [];
    if (now - this.#loopAnsweredAt > this.#staleMs) {
      problems.push(
        `the exit FIFOs' epoll loop has not turned for ${
          Math.round(now - this.#loopAnsweredAt)
        } ms`,
      );
    }
    if (now - this.#storeAnsweredAt > this.#staleMs) {
      const why = this.#lastStoreError === null ? "" : ` (${this.#lastStoreError})`;
      problems.push(
        `the store has not answered for ${Math.round(now - this.#storeAnsweredAt)} ms${why}`,
      );
    }
    const alive = problems.length === 0;
    if (!alive && this.#alive) {
      this.#log.error("watchdog not fed: {problems}", { problems: problems.join("; ") });
    } else if (alive && !this.#alive) {
      this.#log.info("watchdog fed again: the epoll loop and the store answer");
    }
    this.#alive = alive;
    return alive;
  }

  #pokeLoop(): void {
    this.#turnsAtPoke = this.#loop.turns;
    try {
      this.#loop.poke();
    } catch {
      // A loop that cannot be woken does not turn: the next check says so.
    }
  }

  #startStoreProbe(): void {
    if (this.#storeProbing) return;
    this.#storeProbing = true;
    this.#probeStore().then(
      () => {
        this.#storeAnsweredAt = this.#now();
        this.#lastStoreError = null;
      },
      (error) => this.#lastStoreError = errorMessage(error),
    ).finally(() => this.#storeProbing = false);
  }
}
