/**
 * The daemon's signal dispositions. A signal with no handler takes its default action, and for
 * SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM that is to end the process: a stray `kill -HUP` (or a
 * `systemctl reload`) would stop exit recording, and systemd counts a death by SIGHUP as a
 * clean exit that `Restart=on-failure` does not undo. So every one of them gets a handler:
 * SIGTERM and SIGINT start the shutdown, SIGHUP asks for a config reload, and the others are
 * logged and ignored. Nothing a handler does stops the exit path: it runs on the same loop.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { errorMessage } from "../error_message.ts";

/** Signals that stop the daemon cleanly. */
export const TERMINATION_SIGNALS: readonly Deno.Signal[] = ["SIGTERM", "SIGINT"];
/** Signals whose default action would kill the daemon, logged and ignored. */
export const IGNORED_SIGNALS: readonly Deno.Signal[] = ["SIGUSR1", "SIGUSR2", "SIGALRM"];

/** Options of {@linkcode installSignalHandlers}. */
export interface SignalHandlerOptions {
  log: Logger;
  /**
   * Called on SIGHUP. Runs one at a time: a SIGHUP that comes while a reload runs is folded
   * into one more reload after it.
   */
  onReload: () => Promise<void>;
}

/** The installed handlers. */
export interface SignalHandlers {
  /** Settles with the first termination signal received. */
  readonly terminated: Promise<Deno.Signal>;
  /** Removes every handler (default dispositions come back). */
  remove(): void;
}

/**
 * Installs the handlers at once; call it before anything slow so that the window in which
 * these signals still kill is as short as the process's start.
 */
export function installSignalHandlers(options: SignalHandlerOptions): SignalHandlers {
  const { log, onReload } = options;
  const installed: Array<[Deno.Signal, () => void]> = [];
  const listen = (signal: Deno.Signal, handler: () => void) => {
    Deno.addSignalListener(signal, handler);
    installed.push([signal, handler]);
  };

  let resolveTerminated: (signal: Deno.Signal) => void = () => {};
  const terminated = new Promise<Deno.Signal>((resolve) => resolveTerminated = resolve);
  for (const signal of TERMINATION_SIGNALS) listen(signal, () => resolveTerminated(signal));

  let reloading: Promise<void> | null = null;
  let again = false;
  const reload = () => {
    if (reloading !== null) {
      again = true;
      return;
    }
    reloading = (async () => {
      do {
        again = false;
        try {
          await onReload();
        } catch (error) {
          log.error("SIGHUP: reload failed, keeping the running configuration: {error}", {
            error: errorMessage(error),
          });
        }
      } while (again);
    })().finally(() => reloading = null);
  };
  listen("SIGHUP", () => {
    log.info("SIGHUP received: reloading the configuration");
    reload();
  });
  for (const signal of IGNORED_SIGNALS) {
    listen(signal, () => log.warn("{signal} received: ignored", { signal }));
  }

  return {
    terminated,
    remove() {
      for (const [signal, handler] of installed.splice(0)) {
        try {
          Deno.removeSignalListener(signal, handler);
        } catch {
          // Already removed.
        }
      }
    },
  };
}
