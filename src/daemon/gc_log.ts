/**
 * The GC's story in the log, from the collector's events: a container's first failed attempt at
 * warning with the step and the reason, then again each time its attempt count doubles (2, 4,
 * 8…: a few lines a day for one that never gets clean, not one per retry), and its success at
 * info. Every line has `id=` and `runtime=` and says the attempt count; failures have `step=`
 * and the reason.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { CollectorEvent } from "../gc/collector.ts";
import { errorMessage } from "../error_message.ts";

/** Whether the `attempt`th failure in a row is logged: the first and each doubling. */
export function isLoggedFailure(attempt: number): boolean {
  return attempt >= 1 && (attempt & (attempt - 1)) === 0;
}

/** Returns the collector's observer that logs to `log`. */
export function gcLogger(log: Logger): (event: CollectorEvent) => void {
  return (event) => {
    switch (event.type) {
      case "attempt-finished": {
        const { id, runtime, attempt, outcome } = event;
        if (event.ok) {
          log.info(
            attempt === 1 ? "cleaned up {id}" : "cleaned up {id} after {attempt} attempts",
            { id, runtime, attempt, durationMs: Math.round(event.durationMs) },
          );
          return;
        }
        if (!isLoggedFailure(attempt)) return;
        const fields = {
          id,
          runtime,
          attempt,
          step: outcome.failedStep ?? "none",
          error: outcome.error,
          procState: outcome.procState,
          nextAttemptAt: event.nextAttemptAt === null
            ? null
            : new Date(event.nextAttemptAt).toISOString(),
        };
        if (attempt === 1) log.warn("cleanup of {id} failed at {step}: {error}", fields);
        else {log.warn(
            "cleanup of {id} still failing after {attempt} attempts at {step}: {error}",
            fields,
          );}
        return;
      }
      case "store-error":
        log.warn("GC of {id}: the store failed, retrying in {retryInMs} ms: {error}", {
          id: event.id,
          retryInMs: Math.round(event.retryInMs),
          error: errorMessage(event.error),
        });
        return;
      case "dropped":
        log.debug("GC of {id} dropped: {reason}", { id: event.id, reason: event.reason });
        return;
      case "attempt-started":
        log.debug("cleanup of {id}: attempt {attempt}", {
          id: event.id,
          runtime: event.runtime,
          attempt: event.attempt,
        });
        return;
    }
  };
}
