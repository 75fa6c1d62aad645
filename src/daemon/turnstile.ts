/**
 * Turns handed out one after another: a FIFO counting semaphore that can give way to the exit
 * path. The socket API's server takes a turn for each request it works on, and the store's
 * reads take one for each read, so that neither hundreds of clients nor hundreds of reads are
 * worked on at once.
 *
 * @module
 */

/** What the exit path tells those who give way to it. */
export interface ExitPathState {
  /** True while an exit is being written to the store. */
  readonly recordingExits: boolean;
  /** Resolves once no exit is being written (or after a bounded wait). */
  exitsRecorded(): Promise<void>;
}

/** Gives a turn back; calling it again does nothing. */
export type Release = () => void;

/**
 * At most `count` turns out at once, handed out in the order they were asked for. With
 * `exits`, no turn is handed out while an exit is being recorded: the queue waits, once for all
 * of its waiters, until the exit is durable (or the exit path's bounded wait ends), and then
 * the turns free at that moment go without asking again, so that a stream of exits slows the
 * queue down but never stops it.
 */
export class Turnstile {
  #free: number;
  #taken = 0;
  readonly #exits: ExitPathState | undefined;
  readonly #waiting: Array<(release: Release) => void> = [];
  #pausing = false;

  constructor(count: number, exits?: ExitPathState) {
    this.#free = count;
    this.#exits = exits;
  }

  /** Turns out now. */
  get active(): number {
    return this.#taken;
  }

  /** Callers waiting for a turn now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves to the function that gives the turn back, once the turn is the caller's. */
  take(): Promise<Release> {
    if (this.#free > 0 && this.#waiting.length === 0 && !this.#exits?.recordingExits) {
      return Promise.resolve(this.#hand());
    }
    const turn = new Promise<Release>((resolve) => this.#waiting.push(resolve));
    this.#grant(false);
    return turn;
  }

  /** Runs `work` in a turn of its own. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.take();
    try {
      return await work();
    } finally {
      release();
    }
  }

  #hand(): Release {
    this.#free--;
    this.#taken++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#free++;
      this.#taken--;
      this.#grant(false);
    };
  }

  /** Hands the free turns to the first waiters; `yielded` when the queue just gave way. */
  #grant(yielded: boolean): void {
    if (this.#pausing) return;
    while (this.#free > 0 && this.#waiting.length > 0) {
      if (!yielded && this.#exits?.recordingExits) {
        this.#pausing = true;
        const resume = () => {
          this.#pausing = false;
          this.#grant(true);
        };
        this.#exits.exitsRecorded().then(resume, resume);
        return;
      }
      this.#waiting.shift()!(this.#hand());
    }
  }
}
