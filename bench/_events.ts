/**
 * Follows the daemon's event stream (`GET /v1/events?follow=1`, NDJSON) and notes when each
 * event arrived, on the clock every benchmark process shares.
 *
 * @module
 */

import { nowMs } from "./_clock.ts";
import { sleep } from "./_stats.ts";
import type { ReaperEvent } from "../src/store/events.ts";
import { RawHttpClient } from "./_raw_http.ts";

/** An event as the daemon streams it: one NDJSON line of `/v1/events`. */
export type StreamedEvent = ReaperEvent;

/** An event and the moment its line reached the benchmark. */
export interface Arrival {
  event: StreamedEvent;
  arrivedAt: number;
}

/** The follower. */
export class EventFeed {
  readonly #client: RawHttpClient;
  readonly #abort = new AbortController();
  readonly #seen = new Map<string, Arrival>();
  readonly #waiters = new Map<string, (a: Arrival) => void>();
  readonly #counts = new Map<string, number>();
  readonly #countWaiters: { kind: string; n: number; resolve: () => void }[] = [];
  #done: Promise<void> = Promise.resolve();
  #lastSeq = 0;
  #failure: unknown = null;

  private constructor(socket: string) {
    this.#client = new RawHttpClient(socket);
  }

  /** Starts following the daemon on `socket` from the event after `since`. */
  static async start(socket: string, since = 0): Promise<EventFeed> {
    const feed = new EventFeed(socket);
    feed.#done = feed.#read(
      await feed.#client.follow(`/v1/events?since=${since}&follow=1`),
    );
    return feed;
  }

  async #read(stream: AsyncGenerator<string>): Promise<void> {
    try {
      for await (const line of stream) {
        if (line === "") continue;
        const arrivedAt = nowMs();
        const event = JSON.parse(line) as StreamedEvent;
        this.#lastSeq = event.seq;
        const key = `${event.kind}\0${event.id}`;
        const arrival = { event, arrivedAt };
        this.#seen.set(key, arrival);
        this.#waiters.get(key)?.(arrival);
        this.#waiters.delete(key);
        const n = (this.#counts.get(event.kind) ?? 0) + 1;
        this.#counts.set(event.kind, n);
        for (let i = this.#countWaiters.length - 1; i >= 0; i--) {
          const w = this.#countWaiters[i]!;
          if (w.kind === event.kind && n >= w.n) {
            this.#countWaiters.splice(i, 1);
            w.resolve();
          }
        }
      }
    } catch (e) {
      if (!this.#abort.signal.aborted) this.#failure = e;
    }
  }

  /** The seq of the last event received. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** How many events of `kind` arrived so far. */
  count(kind: string): number {
    return this.#counts.get(kind) ?? 0;
  }

  /** The arrival of the `kind` event of container `id`, if it came already. */
  get(kind: string, id: string): Arrival | undefined {
    return this.#seen.get(`${kind}\0${id}`);
  }

  /** Resolves with the arrival of the `kind` event of `id` (at once if it came already). */
  waitFor(kind: string, id: string, timeoutMs = 60_000): Promise<Arrival> {
    const key = `${kind}\0${id}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(key);
        reject(new Error(`no ${kind} event for ${id} within ${timeoutMs} ms${this.#why()}`));
      }, timeoutMs);
      this.#waiters.set(key, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
    });
  }

  /** Resolves once `n` events of `kind` have arrived in all. */
  waitCount(kind: string, n: number, timeoutMs = 120_000): Promise<void> {
    if (this.count(kind) >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = { kind, n, resolve: () => {} };
      const timer = setTimeout(() => {
        const i = this.#countWaiters.indexOf(entry);
        if (i >= 0) this.#countWaiters.splice(i, 1);
        reject(
          new Error(
            `only ${this.count(kind)} of ${n} ${kind} events in ${timeoutMs} ms${this.#why()}`,
          ),
        );
      }, timeoutMs);
      entry.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#countWaiters.push(entry);
    });
  }

  #why(): string {
    return this.#failure === null ? "" : ` (stream failed: ${this.#failure})`;
  }

  /** Stops following. */
  async close(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    // Closing the connection ends the read under way.
    this.#client.close();
    await Promise.race([this.#done, sleep(2000)]);
  }
}
