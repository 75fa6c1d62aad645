/**
 * One client connection of the socket API: HTTP/1.1 requests read off a `Deno.Conn`, handed
 * to the router as `Request`s, and their `Response`s written back, with keep-alive.
 *
 * The daemon runs its own connection loop (instead of `Deno.serve`) so that it decides when a
 * connection is accepted, how long an idle one may stay, and what happens when descriptors run
 * out; see `http.ts`. Every limit here bounds what one client can make the daemon hold: a head
 * of at most `maxHeadBytes`, a body of at most `maxBodyBytes`, no idle connection past
 * `idleTimeoutMs`, no request head or body trickled in for longer than `idleTimeoutMs`, no
 * response write that makes no progress for that long, and no whole answer (an event stream
 * aside) taken slower than in `responseTimeoutMs`.
 *
 * The deadlines of one connection are three timers made once (see `deadline.ts`), moved before
 * each wait rather than made anew: a request costs no timer of its own.
 *
 * One read is pending on the connection at any time, also while a request is handled, so that
 * a client hanging up aborts its request's signal (long polls and event streams end then).
 *
 * @module
 */

import { errorMessage } from "../error_message.ts";
import { Deadline } from "./deadline.ts";
import { rawBody } from "./raw_body.ts";

/** A request handler: never throws (the router answers every error itself). */
export type ConnHandler = (request: Request) => Promise<Response>;

/** The limits of one connection (read again before each request, so they may change live). */
export interface ConnLimits {
  /** Close a connection with no request under way (or a stalled read or write) after this. */
  idleTimeoutMs: number;
  /** Largest request line plus headers, in bytes. */
  maxHeadBytes: number;
  /** Largest request body, in bytes. */
  maxBodyBytes: number;
  /** A whole answer (not a stream) must be written within this from its first byte (ms). */
  responseTimeoutMs: number;
}

/** What {@linkcode serveConnection} needs besides the connection. */
export interface ConnContext {
  handler: ConnHandler;
  limits: () => ConnLimits;
  /** Aborted at shutdown: a wait on the client ends; a request read whole is still answered. */
  closing: AbortSignal;
  /**
   * Waits for a turn to handle a request that has started to arrive; resolves to the function
   * that gives the turn back. Bounds how many requests the daemon works on at once.
   */
  admit?: () => Promise<() => void>;
}

const CRLF2 = new Uint8Array([13, 10, 13, 10]);
const READ_SIZE = 4 * 1024;
/** A request holds its turn at most this long (ms): long polls and streams then let go. */
const TURN_HOLD_MS = 50;
/** Bodies larger than this are written apart from the head instead of copied behind it. */
const SEPARATE_BODY_BYTES = 16 * 1024;
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;

/** Why a request cannot be served: answered with `status`, then the connection is closed. */
class BadRequest extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Reading side of a connection: a buffer and at most one read in flight. */
class Input {
  readonly #conn: Deno.Conn;
  readonly #closing: AbortSignal;
  /** Handed to each read in turn: one allocation per connection, not one per read. */
  readonly #chunk = new Uint8Array(READ_SIZE);
  #buf = new Uint8Array(0);
  #pending: Promise<void> | null = null;
  eof = false;
  /** True while waiting for bytes the client owes: the next request, or the rest of one. */
  needing = false;
  /** Told once when the peer is gone (end of file or a failed read). */
  onEof: () => void = () => {};

  constructor(conn: Deno.Conn, closing: AbortSignal) {
    this.#conn = conn;
    this.#closing = closing;
  }

  get buffered(): Uint8Array {
    return this.#buf;
  }

  consume(n: number): Uint8Array {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Reads once more (or joins the read in flight). */
  fill(): Promise<void> {
    if (this.eof) return Promise.resolve();
    return this.#pending ??= this.#readOnce();
  }

  /**
   * Waits for bytes the client owes. Once the server is closing, the connection is closed
   * instead: a client that stopped sending would otherwise hold the shutdown for
   * `idleTimeoutMs`.
   */
  async need(): Promise<void> {
    if (this.#closing.aborted) {
      try {
        this.#conn.close();
      } catch {
        // Closed already.
      }
      this.#gone();
      return;
    }
    this.needing = true;
    try {
      await this.fill();
    } finally {
      this.needing = false;
    }
  }

  async #readOnce(): Promise<void> {
    const chunk = this.#chunk;
    try {
      const n = await this.#conn.read(chunk);
      if (n === null) {
        this.#gone();
      } else if (n > 0) {
        const next = new Uint8Array(this.#buf.length + n);
        next.set(this.#buf);
        next.set(chunk.subarray(0, n), this.#buf.length);
        this.#buf = next;
      }
    } catch {
      this.#gone();
    } finally {
      this.#pending = null;
    }
  }

  #gone(): void {
    if (this.eof) return;
    this.eof = true;
    this.onEof();
  }
}

/** Resolves true when `work` settles first, false after `ms` (the work goes on). */
function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => done(false), ms);
    work.then(() => done(true), () => done(true));
  });
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = Math.max(0, from); i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

interface Head {
  method: string;
  target: string;
  minor: number;
  headers: Headers;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const match = REQUEST_LINE.exec(lines[0] ?? "");
  if (match === null) throw new BadRequest(400, "malformed request line");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new BadRequest(400, "malformed header line");
    try {
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      throw new BadRequest(400, `malformed value of header ${name}`);
    }
  }
  return { method: match[1]!, target: match[2]!, minor: Number(match[3]), headers };
}

/** The `{ "error": … }` answer the router gives, for what is refused before it. */
export function errorBytes(
  status: number,
  message: string,
  reason = statusText(status),
): Uint8Array {
  const body = `${JSON.stringify({ error: message })}\n`;
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${encoder.encode(body).length}\r\nconnection: close\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

function statusText(status: number): string {
  return REASONS[status] ?? "Status";
}

/**
 * The deadlines of one connection. Each expiry but the turn's closes the connection, which ends
 * the read or write waiting on it.
 */
interface Deadlines {
  /** The next request, its head coming in, a write taken by the client. */
  stall: Deadline;
  /** A whole answer. */
  whole: Deadline;
}

/** Writes all of `bytes`; `stall` closes the connection when the peer takes none for `ms`. */
async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
  stall: Deadline,
  ms: number,
): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    stall.in(ms);
    off += await conn.write(bytes.subarray(off));
  }
  stall.clear();
}

/** Streams are sent as they come; everything else is read whole and sent with its length. */
function isStream(response: Response): boolean {
  const type = response.headers.get("content-type") ?? "";
  return type.startsWith("application/x-ndjson") || type.startsWith("text/event-stream");
}

/**
 * Serves requests on `conn` until the client leaves, the connection idles out, a request is
 * malformed, or the server closes; then closes `conn`. Never throws.
 */
export async function serveConnection(conn: Deno.Conn, ctx: ConnContext): Promise<void> {
  const input = new Input(conn, ctx.closing);
  /** Aborts the request under way when the client hangs up. */
  const current: { abort: AbortController | null } = { abort: null };
  input.onEof = () => current.abort?.abort();
  const cut = () => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  };
  const deadlines: Deadlines = { stall: new Deadline(cut), whole: new Deadline(cut) };
  let release: (() => void) | null = null;
  const giveBack = () => {
    const held = release;
    release = null;
    held?.();
  };
  // Long polls and streams give their turn back once they have started.
  const turnHeld = new Deadline(giveBack);
  // Waiting for the client (see Input.need) ends when the server closes; a request that has
  // come in whole is still answered.
  const onClosing = () => input.needing && cut();
  ctx.closing.addEventListener("abort", onClosing);
  try {
    while (!ctx.closing.aborted) {
      const limits = ctx.limits();
      // Idle until the next request starts (empty lines between requests are allowed, RFC 9112
      // §2.2); only then does it wait for a turn.
      for (;;) {
        while (input.buffered[0] === 13 || input.buffered[0] === 10) input.consume(1);
        if (input.buffered.length > 0) break;
        if (input.eof || ctx.closing.aborted) return;
        deadlines.stall.in(limits.idleTimeoutMs);
        await input.need();
      }
      deadlines.stall.clear();
      release = ctx.admit === undefined ? null : await ctx.admit();
      turnHeld.in(TURN_HOLD_MS);
      try {
        let head: Head | null;
        let request: Request;
        let keepAlive: boolean;
        try {
          head = await readHead(input, limits, deadlines.stall);
          if (head === null) return;
          ({ request, keepAlive } = await readRequest(conn, input, head, limits));
        } catch (e) {
          if (e instanceof BadRequest) {
            await writeAll(
              conn,
              errorBytes(e.status, e.message),
              deadlines.stall,
              limits.idleTimeoutMs,
            );
          }
          return;
        }
        // Wait for the next bytes meanwhile: only so is a client that hangs up noticed.
        if (input.buffered.length <= limits.maxHeadBytes) void input.fill();
        const response = await ctx.handler(request);
        keepAlive &&= !ctx.closing.aborted;
        const open = await writeResponse(conn, response, head, keepAlive, deadlines, limits);
        current.abort = null;
        if (!open) return;
      } finally {
        turnHeld.clear();
        giveBack();
      }
    }
  } catch {
    // A broken connection ends here; the client has gone or misbehaved.
  } finally {
    ctx.closing.removeEventListener("abort", onClosing);
    deadlines.stall.dispose();
    deadlines.whole.dispose();
    turnHeld.dispose();
    current.abort?.abort();
    cut();
  }

  async function readRequest(
    conn: Deno.Conn,
    input: Input,
    head: Head,
    limits: ConnLimits,
  ): Promise<{ request: Request; keepAlive: boolean }> {
    const { method, target, minor, headers } = head;
    const connection = (headers.get("connection") ?? "").toLowerCase();
    let keepAlive = minor === 1 ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    let body: Uint8Array | null = null;
    const deadline = performance.now() + limits.idleTimeoutMs;
    const stall = deadlines.stall;
    if (te !== null) {
      // Only chunked alone: no other coding is decoded, so a body under one cannot be read.
      if (te.trim().toLowerCase() !== "chunked") {
        throw new BadRequest(501, `transfer-encoding ${te} is not supported`);
      }
      // Both framings at once is how requests are smuggled: answer this one, then close.
      if (cl !== null) keepAlive = false;
      await continueIfAsked(conn, headers, minor, stall, limits);
      body = await readChunked(input, limits, deadline);
    } else if (cl !== null) {
      if (!/^\d+$/.test(cl)) throw new BadRequest(400, "malformed content-length");
      const length = Number(cl);
      if (length > limits.maxBodyBytes) {
        throw new BadRequest(413, `request body is larger than ${limits.maxBodyBytes} bytes`);
      }
      if (length > 0) {
        await continueIfAsked(conn, headers, minor, stall, limits);
        body = await readExactly(input, length, deadline);
      }
    }
    const path = originForm(target);
    if (path === null) throw new BadRequest(400, "malformed request target");
    const abort = new AbortController();
    current.abort = abort;
    if (input.eof) abort.abort();
    try {
      const hasBody = body !== null && method !== "GET" && method !== "HEAD";
      const request = new Request(`http://localhost${path}`, {
        method,
        headers,
        signal: abort.signal,
        ...(hasBody ? { body: body as Uint8Array<ArrayBuffer> } : {}),
      });
      return { request, keepAlive };
    } catch (e) {
      throw new BadRequest(400, `malformed request: ${errorMessage(e)}`);
    }
  }
}

/**
 * The path and query of a request target. Clients that reach the socket through a proxy
 * setting (Deno's `fetch` among them) send the absolute form `http://host/path`.
 */
function originForm(target: string): string | null {
  if (target.startsWith("/")) return target;
  const absolute = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
  if (absolute === null) return null;
  const rest = absolute[1]!;
  return rest.startsWith("/") ? rest : `/${rest}`;
}

/**
 * Reads up to the end of the request head that has started to come in (all of it within
 * `idleTimeoutMs`); null when the connection should just close.
 */
async function readHead(input: Input, limits: ConnLimits, stall: Deadline): Promise<Head | null> {
  let scanned = 0;
  stall.in(limits.idleTimeoutMs);
  for (;;) {
    const at = indexOf(input.buffered, CRLF2, scanned - 3);
    if (at >= 0) {
      stall.clear();
      const text = latin1.decode(input.consume(at + 4).subarray(0, at));
      return parseHead(text);
    }
    if (input.buffered.length > limits.maxHeadBytes) {
      throw new BadRequest(431, `request head is larger than ${limits.maxHeadBytes} bytes`);
    }
    scanned = input.buffered.length;
    if (input.eof) return null;
    await input.need();
  }
}

/** Waits for more of a body that must be in by `deadline` (a `performance.now()` time). */
async function more(input: Input, deadline: number): Promise<void> {
  if (input.eof) throw new BadRequest(400, "the request body ended early");
  const wait = deadline - performance.now();
  if (wait <= 0 || !await within(input.need(), wait)) {
    throw new BadRequest(408, "the request body did not arrive in time");
  }
}

async function readExactly(input: Input, length: number, deadline: number): Promise<Uint8Array> {
  while (input.buffered.length < length) await more(input, deadline);
  return input.consume(length).slice();
}

async function readLine(input: Input, deadline: number): Promise<string> {
  for (;;) {
    const at = indexOf(input.buffered, CRLF2.subarray(0, 2), 0);
    if (at >= 0) return latin1.decode(input.consume(at + 2).subarray(0, at));
    if (input.buffered.length > 4096) throw new BadRequest(400, "malformed chunked body");
    await more(input, deadline);
  }
}

async function readChunked(
  input: Input,
  limits: ConnLimits,
  deadline: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const size = /^([0-9A-Fa-f]{1,8})(;.*)?$/.exec(await readLine(input, deadline));
    if (size === null) throw new BadRequest(400, "malformed chunk size");
    const n = parseInt(size[1]!, 16);
    if (n === 0) break;
    total += n;
    if (total > limits.maxBodyBytes) {
      throw new BadRequest(413, `request body is larger than ${limits.maxBodyBytes} bytes`);
    }
    parts.push(await readExactly(input, n, deadline));
    if (await readLine(input, deadline) !== "") throw new BadRequest(400, "malformed chunk");
  }
  while (await readLine(input, deadline) !== "") {
    // Trailer fields carry nothing the API uses.
  }
  const body = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    body.set(p, off);
    off += p.length;
  }
  return body;
}

async function continueIfAsked(
  conn: Deno.Conn,
  headers: Headers,
  minor: number,
  stall: Deadline,
  limits: ConnLimits,
): Promise<void> {
  if (minor === 1 && (headers.get("expect") ?? "").toLowerCase() === "100-continue") {
    const interim = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");
    await writeAll(conn, interim, stall, limits.idleTimeoutMs);
  }
}

async function writeResponse(
  conn: Deno.Conn,
  response: Response,
  head: Head,
  keepAlive: boolean,
  { stall, whole }: Deadlines,
  limits: ConnLimits,
): Promise<boolean> {
  const stallMs = limits.idleTimeoutMs;
  const noBody = head.method === "HEAD" || response.status === 204 || response.status === 304;
  const stream = !noBody && response.body !== null && isStream(response);
  const chunked = stream && head.minor === 1;
  let lines = `HTTP/1.1 ${response.status} ${
    response.statusText || statusText(response.status)
  }\r\n`;
  for (const [name, value] of response.headers) {
    if (name === "content-length" || name === "transfer-encoding" || name === "connection") {
      continue;
    }
    lines += `${name}: ${value}\r\n`;
  }
  // Without chunked framing (HTTP/1.0) a stream ends where the connection does.
  const close = !keepAlive || (stream && !chunked);
  lines += `connection: ${close ? "close" : "keep-alive"}\r\n`;
  if (!stream) {
    const shared = rawBody(response);
    if (shared !== undefined) await response.body?.cancel().catch(() => {});
    const body = noBody
      ? new Uint8Array(0)
      : shared ?? new Uint8Array(await response.arrayBuffer());
    if (response.status !== 204 && response.status !== 304) {
      lines += `content-length: ${body.length}\r\n`;
    }
    const headBytes = encoder.encode(`${lines}\r\n`);
    const sent = head.method === "HEAD" ? 0 : body.length;
    // A client that takes the answer a trickle at a time moves every write on, but not this.
    whole.in(limits.responseTimeoutMs);
    if (sent > SEPARATE_BODY_BYTES) {
      // A large body goes as it is: no copy per client of bytes they may share.
      await writeAll(conn, headBytes, stall, stallMs);
      await writeAll(conn, body, stall, stallMs);
    } else {
      const out = new Uint8Array(headBytes.length + sent);
      out.set(headBytes);
      out.set(body.subarray(0, sent), headBytes.length);
      await writeAll(conn, out, stall, stallMs);
    }
    whole.clear();
    return !close;
  }
  if (chunked) lines += "transfer-encoding: chunked\r\n";
  await writeAll(conn, encoder.encode(`${lines}\r\n`), stall, stallMs);
  const reader = response.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      if (!chunked) {
        await writeAll(conn, value, stall, stallMs);
        continue;
      }
      const frame = new Uint8Array(value.length + 12);
      const size = encoder.encode(`${value.length.toString(16)}\r\n`);
      frame.set(size);
      frame.set(value, size.length);
      frame.set([13, 10], size.length + value.length);
      await writeAll(conn, frame.subarray(0, size.length + value.length + 2), stall, stallMs);
    }
    if (chunked) await writeAll(conn, encoder.encode("0\r\n\r\n"), stall, stallMs);
  } finally {
    await reader.cancel().catch(() => {});
  }
  return !close;
}
