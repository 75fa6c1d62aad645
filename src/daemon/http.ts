/**
 * The socket API's server: JSON over HTTP on a unix socket, mode 0600, so that only the
 * socket's owner (root, for the system service) can talk to the daemon. The routes live in
 * `routes.ts`; this file owns the socket's life: refuse to start when another daemon answers
 * on it, remove a stale socket left by a crash, listen, restrict, bound the connections it
 * holds, survive running out of descriptors, and shut down without leaving long polls hanging.
 *
 * @module
 */

import { DEFAULT_HTTP } from "../config.ts";
import { errorMessage } from "../error_message.ts";
import { getLogger } from "../log.ts";
import * as libc from "../sys/libc.ts";
import type { ReaperApi } from "./api.ts";
import { type ConnLimits, errorBytes, serveConnection } from "./http_conn.ts";
import { createRouter, MAX_BODY_BYTES, type RouterOptions } from "./routes.ts";
import { type ExitPathState, Turnstile } from "./turnstile.ts";

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions extends Omit<RouterOptions, "closing"> {
  /** Absolute path of the unix socket. Its directory is created (0700) when missing. */
  path: string;
  /** Connections open at once at most, asked at each accept (it may change). */
  maxConnections?: () => number;
  /**
   * The exit path: no request is started while it records an exit, so that it has the thread
   * and the store (one wait for all the requests held back, bounded by the exit path).
   */
  exits?: ExitPathState;
  /** An idle connection is closed after this (ms), asked before each request. */
  idleTimeoutMs?: () => number;
  /** A whole answer must be taken by the client within this (ms), asked before each request. */
  responseTimeoutMs?: () => number;
}

/** Largest request line plus headers, in bytes. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** A running socket API server. */
export interface HttpServer {
  /** The socket's path. */
  readonly path: string;
  /** Settles when the server has stopped. */
  readonly finished: Promise<void>;
  /** Client connections open now. */
  readonly connections: number;
  /**
   * Stops accepting, ends long polls and event streams, waits for the requests in flight,
   * and removes the socket file.
   */
  shutdown(): Promise<void>;
}

/** Another process already answers on the socket: two daemons must never share a store. */
export class SocketInUseError extends Error {
  constructor(path: string) {
    super(`another process is already serving on ${path}: is reaperd already running?`);
    this.name = "SocketInUseError";
  }
}

const log = getLogger("http");

/**
 * Makes `path` free to bind: nothing there, or a stale socket that nobody answers on (left by
 * a killed daemon), which is removed. Throws {@linkcode SocketInUseError} when something
 * answers, and refuses to remove anything that is not a socket.
 */
export async function claimSocketPath(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isSocket) {
    throw new Error(`${path} exists and is not a socket: refusing to replace it`);
  }
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) {
      log.info("removing stale socket {path}", { path });
      await Deno.remove(path);
      return;
    }
    throw e;
  }
  conn.close();
  throw new SocketInUseError(path);
}

async function ensureParentDir(path: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
}

/**
 * Requests worked on at once. Hundreds of busy clients would otherwise each get a slice of
 * every turn of the event loop, and the exit path's steps would wait behind all of them.
 */
export const MAX_ACTIVE_REQUESTS = 8;

/** Consecutive accept failures are logged at most this often. */
const ACCEPT_LOG_INTERVAL_MS = 10_000;
/** Pause after an accept failure that is not descriptor exhaustion. */
const ACCEPT_BACKOFF_MS = 100;

/** A descriptor held in reserve, let go to take one connection off the backlog at EMFILE. */
function openReserve(): number {
  try {
    return libc.open("/dev/null", libc.O.RDONLY | libc.O.CLOEXEC);
  } catch {
    return -1;
  }
}

function isFdExhaustion(e: unknown): boolean {
  const text = e instanceof Error ? `${(e as { code?: string }).code} ${e.message}` : String(e);
  return /EMFILE|ENFILE|os error 2[34]\b/.test(text);
}

/**
 * Refused connections open at once at most, each until its request is read and answered; more
 * wait in the listen backlog, where they hold no descriptor of the daemon's.
 */
const MAX_LINGERING = 64;
/** How long a refused connection's request is read for (ms). */
const LINGER_MS = 1000;
/** Bytes at most read off a refused connection. */
const LINGER_BYTES = 64 * 1024;

/**
 * Reads and drops what the peer sends until it closes, `ms` pass, too much came, or (with
 * `headOnly`) the bytes read so far end a request head.
 */
async function discardInput(conn: Deno.Conn, ms: number, headOnly: boolean): Promise<void> {
  const buf = new Uint8Array(4096);
  /** The last bytes read, to find a head's end split across reads. */
  let tail = "";
  const deadline = performance.now() + ms;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    for (let total = 0; total < LINGER_BYTES && performance.now() < deadline;) {
      const n = await Promise.race([conn.read(buf), late]);
      if (n === null) return;
      total += n;
      if (headOnly) {
        const text = tail + latin1.decode(buf.subarray(0, n));
        if (text.includes("\r\n\r\n")) return;
        tail = text.slice(-3);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

const latin1 = new TextDecoder("latin1");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Serves `api` on the unix socket `options.path` and resolves once it is listening.
 *
 * Connections are accepted by a loop of the daemon's own: at most `maxConnections()` are open
 * at once (one more is answered 503 and closed); an accept that fails is logged and retried
 * after a pause, and at descriptor exhaustion a descriptor held in reserve is let go to take
 * the waiting connection off the backlog and close it, so the server never dies of it and the
 * listener never spins.
 *
 * @example
 * ```ts ignore
 * const server = await startHttpServer(api, { path: "/run/reaperd/reaperd.sock" });
 * // …
 * await server.shutdown();
 * ```
 */
export async function startHttpServer(
  api: ReaperApi,
  options: HttpServerOptions,
): Promise<HttpServer> {
  const { path, maxConnections, idleTimeoutMs, responseTimeoutMs, exits, ...routerOptions } =
    options;
  await ensureParentDir(path);
  await claimSocketPath(path);
  const closing = new AbortController();
  const handler = createRouter(api, { ...routerOptions, closing: closing.signal });
  const limits = {
    maxConnections: maxConnections ?? (() => DEFAULT_HTTP.maxConnections),
    idleTimeoutMs: idleTimeoutMs ?? (() => DEFAULT_HTTP.idleTimeoutMs),
    responseTimeoutMs: responseTimeoutMs ?? (() => DEFAULT_HTTP.responseTimeoutMs),
  };
  const maxBody = routerOptions.maxBodyBytes ?? MAX_BODY_BYTES;
  const connLimits = (): ConnLimits => ({
    idleTimeoutMs: limits.idleTimeoutMs(),
    responseTimeoutMs: limits.responseTimeoutMs(),
    maxHeadBytes: MAX_HEAD_BYTES,
    maxBodyBytes: maxBody,
  });
  const listener = Deno.listen({ transport: "unix", path });
  // Restrict the socket before the first accept. The socket dir (0700, RuntimeDirectoryMode=0700
  // under systemd) guards the instant before this.
  try {
    Deno.chmodSync(path, 0o600);
  } catch (e) {
    listener.close();
    await Deno.remove(path).catch(() => {});
    throw e;
  }
  const ours = Deno.statSync(path).ino;
  log.info("listening on {path}", { path });

  const open = new Set<Promise<void>>();
  const turns = new Turnstile(MAX_ACTIVE_REQUESTS, exits);
  let stopped = false;
  let reserve = openReserve();
  let lastAcceptLog = -Infinity;
  let lastRefusalLog = -Infinity;
  let refused = 0;
  let lingering = 0;
  /** Wakes the accept loop when a refused or served connection is done. */
  let wakeAccept: () => void = () => {};
  const roomMade = () => new Promise<void>((resolve) => wakeAccept = resolve);
  const throttled = (last: number) => performance.now() - last >= ACCEPT_LOG_INTERVAL_MS;

  const refuse = (conn: Deno.Conn, cap: number) => {
    refused++;
    if (throttled(lastRefusalLog)) {
      lastRefusalLog = performance.now();
      log.warn("refusing connections: {open} open, the limit is {cap} ({refused} refused)", {
        open: open.size,
        cap,
        refused,
      });
    }
    const bytes = errorBytes(503, `too many connections (${cap}): try again later`);
    // A client whose answer comes before its request is written takes it for a broken
    // connection, and closing a socket with its request unread resets it: either way the client
    // would read "connection reset", not the 503. So, for a bounded time, the request head is
    // read first and whatever follows it is read and dropped after the answer.
    lingering++;
    (async () => {
      await discardInput(conn, LINGER_MS, true);
      // A small answer fits the socket buffer: the write does not wait for the client.
      await conn.write(bytes);
      await conn.closeWrite();
      await discardInput(conn, LINGER_MS, false);
    })().catch(() => {}).finally(() => {
      lingering--;
      try {
        conn.close();
      } catch {
        // Gone already.
      }
      wakeAccept();
    });
  };

  const acceptLoop = async () => {
    let shedNext = false;
    while (!stopped) {
      // Full, and as many refusals under way as may be: the next clients wait in the backlog.
      while (!stopped && lingering >= MAX_LINGERING && open.size >= limits.maxConnections()) {
        await roomMade();
      }
      if (stopped) break;
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (stopped) break;
        if (throttled(lastAcceptLog)) {
          lastAcceptLog = performance.now();
          log.error("accepting a connection failed, going on: {error}", { error: errorMessage(e) });
        }
        if (isFdExhaustion(e) && reserve >= 0) {
          // Free one descriptor to take the waiting connection and close it at once.
          libc.close(reserve);
          reserve = -1;
          shedNext = true;
        } else {
          await sleep(ACCEPT_BACKOFF_MS);
        }
        continue;
      }
      if (shedNext) {
        shedNext = false;
        conn.close();
        reserve = openReserve();
        continue;
      }
      if (reserve < 0) reserve = openReserve();
      const cap = limits.maxConnections();
      if (open.size >= cap || stopped) {
        refuse(conn, cap);
        continue;
      }
      const served = serveConnection(conn, {
        handler,
        limits: connLimits,
        closing: closing.signal,
        admit: () => turns.take(),
      }).finally(() => {
        open.delete(served);
        wakeAccept();
      });
      open.add(served);
    }
  };
  const accepting = acceptLoop().catch((e) =>
    log.fatal("the socket API's accept loop ended: {error}", { error: errorMessage(e) })
  );

  let stopping: Promise<void> | null = null;
  const shutdown = () => {
    stopping ??= (async () => {
      stopped = true;
      closing.abort();
      listener.close();
      wakeAccept();
      await accepting;
      await Promise.allSettled([...open]);
      if (reserve >= 0) libc.close(reserve);
      reserve = -1;
      // Remove the socket only while it is still the one bound here.
      try {
        if (Deno.lstatSync(path).ino === ours) Deno.removeSync(path);
      } catch {
        // Gone already.
      }
    })();
    return stopping;
  };
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => finish = resolve);
  return {
    path,
    finished,
    get connections() {
      return open.size;
    },
    async shutdown() {
      await shutdown();
      finish();
    },
  };
}
