/**
 * The socket API's server: JSON over HTTP on a unix socket, mode 0600, so that only the
 * socket's owner (root, for the system service) can talk to the daemon. The routes live in
 * `routes.ts`; this file owns the socket's life: refuse to start when another daemon answers
 * on it, remove a stale socket left by a crash, listen, restrict, and shut down without
 * leaving long polls hanging.
 *
 * @module
 */

import { getLogger } from "../log.ts";
import type { ReaperApi } from "./api.ts";
import { createRouter, errorResponse, type RouterOptions } from "./routes.ts";

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions extends Omit<RouterOptions, "closing"> {
  /** Absolute path of the unix socket. Its directory is created (0700) when missing. */
  path: string;
}

/** A running socket API server. */
export interface HttpServer {
  /** The socket's path. */
  readonly path: string;
  /** Settles when the server has stopped. */
  readonly finished: Promise<void>;
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
 * Serves `api` on the unix socket `options.path` and resolves once it is listening.
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
  const { path, ...routerOptions } = options;
  await ensureParentDir(path);
  await claimSocketPath(path);
  const closing = new AbortController();
  const handler = createRouter(api, { ...routerOptions, closing: closing.signal });
  const server = Deno.serve({
    path,
    onListen: () => {},
    onError: (e) => {
      log.error("unhandled error in the HTTP layer: {error}", { error: String(e) });
      return errorResponse(500, "internal error");
    },
  }, handler);
  // Deno.serve binds synchronously: restrict the socket before any request is handled. The
  // socket dir (0700, RuntimeDirectoryMode=0700 under systemd) guards the instant before this.
  try {
    Deno.chmodSync(path, 0o600);
  } catch (e) {
    await server.shutdown();
    throw e;
  }
  log.info("listening on {path}", { path });
  let stopping: Promise<void> | null = null;
  return {
    path,
    finished: server.finished,
    shutdown() {
      // Deno removes the socket file when the listener closes.
      stopping ??= (async () => {
        closing.abort();
        await server.shutdown();
      })();
      return stopping;
    },
  };
}
