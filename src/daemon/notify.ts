/**
 * sd_notify(3) for `Type=notify`: READY=1 once restore is done, STATUS= lines, WATCHDOG=1
 * pings and STOPPING=1. Datagrams go to `$NOTIFY_SOCKET` through an unbound unix datagram
 * socket (`Deno.listenDatagram({ transport: "unixpacket" })` without a path; needs
 * `--unstable-net`). Outside systemd every call is a no-op.
 *
 * @module
 */

import { getLogger } from "../log.ts";
import { errorMessage } from "../error_message.ts";

/** Reads an environment variable. */
export type EnvReader = (name: string) => string | undefined;

/** Options of {@linkcode createNotifier}. */
export interface NotifierOptions {
  /** Environment to read `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID` from. */
  getEnv?: EnvReader;
  /** This process's pid, for `WATCHDOG_PID`. */
  pid?: number;
  /**
   * Remove `NOTIFY_SOCKET` & co. from this process's environment once read (default true), so
   * that runtimes run by cleanup (runc honours NOTIFY_SOCKET) never talk to systemd as us.
   */
  unsetEnvironment?: boolean;
}

/** Talks to the service manager; every method is a no-op when not run by systemd. */
export interface Notifier {
  /** True when `$NOTIFY_SOCKET` was set. */
  readonly enabled: boolean;
  /** The address datagrams go to (see {@linkcode notifyAddress}), or null. */
  readonly address: string | null;
  /** The WATCHDOG=1 period systemd asked for (half of WATCHDOG_USEC), or null. */
  readonly watchdogIntervalMs: number | null;
  /** Sends raw `KEY=value` lines. Never throws: a lost notification is logged, not fatal. */
  notify(...lines: string[]): Promise<void>;
  /** READY=1 (with a STATUS= line when given). */
  ready(status?: string): Promise<void>;
  /** STATUS=…, shown by `systemctl status`. */
  status(text: string): Promise<void>;
  /** STOPPING=1 (with a STATUS= line when given). */
  stopping(status?: string): Promise<void>;
  /** One WATCHDOG=1. */
  watchdog(): Promise<void>;
  /**
   * Sends WATCHDOG=1 every {@linkcode Notifier.watchdogIntervalMs} while `healthy()` is true
   * (always, when not given). Returns the function that stops it. Does nothing without a
   * watchdog. The timer does not keep the process alive.
   */
  startWatchdog(healthy?: () => boolean): () => void;
  /** Closes the socket and stops the watchdog. */
  close(): void;
}

const log = getLogger("notify");
const encoder = new TextEncoder();

/**
 * The address to send to: `@name` is an abstract socket, written with a leading NUL; paths
 * must be absolute. Null for anything else.
 */
export function notifyAddress(socket: string | undefined): string | null {
  if (socket === undefined || socket === "") return null;
  if (socket.startsWith("@")) return `\0${socket.slice(1)}`;
  return socket.startsWith("/") ? socket : null;
}

/**
 * Half of `WATCHDOG_USEC`, in ms, when the watchdog is meant for this process (`WATCHDOG_PID`
 * absent or equal to `pid`); null otherwise.
 */
export function watchdogInterval(getEnv: EnvReader, pid: number): number | null {
  const usec = getEnv("WATCHDOG_USEC");
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  const forPid = getEnv("WATCHDOG_PID");
  if (forPid !== undefined && forPid !== "" && Number(forPid) !== pid) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

function envReader(): EnvReader {
  return (name) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
}

/**
 * Creates the notifier from the environment systemd gives a `Type=notify` service.
 *
 * @example
 * ```ts ignore
 * const notifier = createNotifier();
 * const stopWatchdog = notifier.startWatchdog();
 * await notifier.ready("monitoring 12 containers");
 * // … on SIGTERM:
 * await notifier.stopping();
 * stopWatchdog();
 * ```
 */
export function createNotifier(options: NotifierOptions = {}): Notifier {
  const getEnv = options.getEnv ?? envReader();
  const pid = options.pid ?? Deno.pid;
  const rawSocket = getEnv("NOTIFY_SOCKET");
  const address = notifyAddress(rawSocket);
  const interval = address === null ? null : watchdogInterval(getEnv, pid);
  if (rawSocket !== undefined && address === null) {
    log.warning("ignoring NOTIFY_SOCKET: not an absolute path or @abstract name", {
      socket: rawSocket,
    });
  }
  if (options.unsetEnvironment ?? true) {
    for (const name of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) {
      try {
        Deno.env.delete(name);
      } catch {
        // Without env permission there is nothing to clean.
      }
    }
  }

  let conn: Deno.DatagramConn | null = null;
  let warned = false;
  const timers = new Set<ReturnType<typeof setInterval>>();

  const notify = async (...lines: string[]): Promise<void> => {
    if (address === null || lines.length === 0) return;
    try {
      conn ??= Deno.listenDatagram({ transport: "unixpacket" });
      await conn.send(encoder.encode(lines.join("\n")), { transport: "unix", path: address });
    } catch (e) {
      // systemd restarted or the socket vanished: the service keeps running; say it once.
      if (!warned) {
        warned = true;
        log.warning("cannot notify the service manager: {error}", {
          error: errorMessage(e),
          socket: rawSocket,
        });
      }
    }
  };

  const withStatus = (line: string, status?: string) =>
    status === undefined ? notify(line) : notify(line, `STATUS=${oneLineStatus(status)}`);

  return {
    enabled: address !== null,
    address,
    watchdogIntervalMs: interval,
    notify,
    ready: (status) => withStatus("READY=1", status),
    status: (text) => notify(`STATUS=${oneLineStatus(text)}`),
    stopping: (status) => withStatus("STOPPING=1", status),
    watchdog: () => notify("WATCHDOG=1"),
    startWatchdog(healthy) {
      if (interval === null) return () => {};
      const id = setInterval(() => {
        if (healthy === undefined || healthy()) void notify("WATCHDOG=1");
      }, interval);
      Deno.unrefTimer(id);
      timers.add(id);
      return () => {
        clearInterval(id);
        timers.delete(id);
      };
    },
    close() {
      for (const id of timers) clearInterval(id);
      timers.clear();
      conn?.close();
      conn = null;
    },
  };
}

/** A STATUS= value must be one line: a newline would start another assignment. */
function oneLineStatus(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}
