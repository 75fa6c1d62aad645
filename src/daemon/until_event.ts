/**
 * Waiting for the store's next matching event (`wait`, and `events --follow`).
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import type { ReaperEvent } from "../store/events.ts";

/** Resolves at the first committed event that matches, or on abort or timeout. */
export function untilEvent(
  store: Pick<Store, "subscribe">,
  matches: (event: ReaperEvent) => boolean,
  signal?: AbortSignal,
  timeoutMs?: number,
): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      unsubscribe();
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const unsubscribe = store.subscribe((event) => {
      if (matches(event)) done();
    });
    const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
    signal?.addEventListener("abort", done);
  });
}
