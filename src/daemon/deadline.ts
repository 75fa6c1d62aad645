/**
 * A deadline that moves often for the price of a field write. A connection sets one before
 * each wait (the next request, a write, a turn held); a new timer per wait would cost a timer
 * created and cancelled each time. Here one timer stays armed: when it fires before the
 * deadline (which moved later meanwhile), it is armed again for what is left, and only a
 * deadline moved earlier than the armed timer re-arms it at once.
 *
 * @module
 */

/** Calls `onExpire` once the time set last has passed, unless cleared or moved first. */
export class Deadline {
  readonly #onExpire: () => void;
  readonly #now: () => number;
  /** When it expires (a `now()` time); Infinity when cleared. */
  #at = Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  #firesAt = Infinity;

  constructor(onExpire: () => void, now: () => number = () => performance.now()) {
    this.#onExpire = onExpire;
    this.#now = now;
  }

  /** Expires `ms` from now, whatever was set before. */
  in(ms: number): void {
    const at = this.#now() + ms;
    this.#at = at;
    if (at < this.#firesAt) this.#arm(at);
  }

  /** Expires no more (the armed timer, if any, finds nothing to do when it fires). */
  clear(): void {
    this.#at = Infinity;
  }

  /** Clears it and lets its timer go: the deadline is not used again. */
  dispose(): void {
    this.#at = Infinity;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#firesAt = Infinity;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#firesAt = at;
    this.#timer = setTimeout(this.#fire, Math.max(0, at - this.#now()));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#firesAt = Infinity;
    if (this.#at === Infinity) return;
    if (this.#now() < this.#at) {
      this.#arm(this.#at);
      return;
    }
    this.#at = Infinity;
    this.#onExpire();
  };
}
