/**
 * A small HTTP/1.1 client for the daemon's unix socket, as an engine written in C or Go talks to
 * it: keep-alive connections, one request at a time on each, `content-length` or chunked
 * answers, NDJSON streams read line by line as their chunks arrive. The benchmark times the
 * daemon through it rather than through `fetch`, whose own work per request (and per streamed
 * chunk) on this 2-core machine was of the order of what is being measured.
 *
 * @module
 */

import { splitLines } from "./_lines.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF2 = [13, 10, 13, 10];

/** An answer: the status and the body as text. */
export interface RawResponse {
  status: number;
  body: string;
}

/** Bytes read from a connection and not used yet. */
class Input {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  /** Bytes read from the connection so far. */
  received = 0;
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get length(): number {
    return this.#end - this.#start;
  }

  /** Reads more from the connection; false when the peer closed it. */
  async more(): Promise<boolean> {
    if (this.#end === this.#buf.length) {
      const kept = this.#end - this.#start;
      if (kept * 2 > this.#buf.length) {
        const next = new Uint8Array(this.#buf.length * 2);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      } else {
        this.#buf.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = kept;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.received += n;
    return true;
  }

  /** Index (from the start of what is unread) of `pattern`, or -1. */
  indexOf(pattern: readonly number[]): number {
    const buf = this.#buf;
    const last = this.#end - pattern.length;
    outer: for (let i = this.#start; i <= last; i++) {
      for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
      return i - this.#start;
    }
    return -1;
  }

  /** Takes `n` bytes as text. */
  take(n: number): string {
    const text = decoder.decode(this.#buf.subarray(this.#start, this.#start + n));
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return text;
  }

  /** Takes exactly `n` bytes as text, reading as needed; null when the peer closed first. */
  async takeExactly(n: number): Promise<string | null> {
    while (this.length < n) if (!await this.more()) return null;
    return this.take(n);
  }

  /** Takes a line ending in `\r\n` (without it); null when the peer closed first. */
  async line(): Promise<string | null> {
    let at: number;
    while ((at = this.indexOf([13, 10])) < 0) if (!await this.more()) return null;
    const text = this.take(at);
    this.take(2);
    return text;
  }
}

/** One keep-alive connection: requests sent and answers read one at a time. */
export class Connection {
  readonly conn: Deno.Conn;
  readonly input: Input;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.input = new Input(conn);
  }

  /** Sends one request (a JSON body when `body` is given). */
  async send(method: string, path: string, body?: string): Promise<void> {
    const payload = body === undefined ? "" : body;
    const head = `${method} ${path} HTTP/1.1\r\nhost: reaperd\r\n` +
      (body === undefined
        ? "\r\n"
        : `content-type: application/json\r\ncontent-length: ${
          encoder.encode(payload).length
        }\r\n\r\n`);
    const bytes = encoder.encode(head + payload);
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** The status line and headers of the next answer. */
  async head(): Promise<{ status: number; length: number | null; chunked: boolean }> {
    let end: number;
    while ((end = this.input.indexOf(CRLF2)) < 0) {
      if (!await this.input.more()) throw new Error("the daemon closed the connection");
    }
    const head = this.input.take(end + 4);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    return {
      status: Number(head.slice(9, 12)),
      length: length === null ? null : Number(length[1]),
      chunked: /\r\ntransfer-encoding: *chunked/i.test(head),
    };
  }

  /** The next chunk of a chunked body; null at its end. */
  async chunk(): Promise<string | null> {
    const size = await this.input.line();
    if (size === null) throw new Error("the daemon closed the connection in a chunked body");
    const n = parseInt(size, 16);
    if (n === 0) {
      await this.input.line();
      return null;
    }
    const text = await this.input.takeExactly(n + 2);
    if (text === null) throw new Error("the daemon closed the connection in a chunk");
    return text.slice(0, n);
  }

  /** The chunks of a chunked body, as they arrive. */
  async *chunks(): AsyncGenerator<string> {
    for (let c = await this.chunk(); c !== null; c = await this.chunk()) yield c;
  }

  /** The body of the answer whose head said `length` or `chunked`, as text. */
  async body(length: number | null, chunked: boolean): Promise<string> {
    if (length !== null) {
      const text = await this.input.takeExactly(length);
      if (text === null) throw new Error("the daemon closed the connection in a body");
      return text;
    }
    if (!chunked) throw new Error("an answer with neither content-length nor chunks");
    let text = "";
    for (let c = await this.chunk(); c !== null; c = await this.chunk()) text += c;
    return text;
  }
}

/**
 * Keep-alive connections to one unix socket: a request takes an idle connection or opens one,
 * and gives it back when its answer is read. Used one request at a time it is one connection.
 */
export class RawHttpClient {
  readonly #socket: string;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();

  constructor(socket: string) {
    this.#socket = socket;
  }

  /** Sends one request; resolves to the status and the whole body. */
  async request(method: string, path: string, body?: string): Promise<RawResponse> {
    const idle = this.#idle.pop();
    const c = idle ?? await this.#open();
    const before = c.input.received;
    try {
      await c.send(method, path, body);
      const { status, length, chunked } = await c.head();
      const text = await c.body(length, chunked);
      this.#idle.push(c);
      return { status, body: text };
    } catch (error) {
      this.#drop(c);
      // A kept-alive connection the daemon closed while it idled (its idle timeout) fails
      // before any answer: the request was never taken, so it goes again on a new one.
      if (idle !== undefined && c.input.received === before) {
        Deno.stderr.writeSync(encoder.encode(
          `[bench] ${method} ${path}: a kept-alive connection was closed (${error}); sent again\n`,
        ));
        return await this.request(method, path, body);
      }
      throw error;
    }
  }

  /**
   * Follows a streamed answer (`GET /v1/events?follow=1`) on a connection of its own, once its
   * head says 200: the lines come as soon as the chunk holding each arrives.
   */
  async follow(path: string): Promise<AsyncGenerator<string>> {
    const c = await this.#open();
    try {
      await c.send("GET", path);
      const { status, length, chunked } = await c.head();
      if (status !== 200 || !chunked) {
        throw new Error(`GET ${path}: ${status} ${await c.body(length, chunked)}`);
      }
    } catch (error) {
      this.#drop(c);
      throw error;
    }
    return this.#lines(c);
  }

  async *#lines(c: Connection): AsyncGenerator<string> {
    try {
      yield* splitLines(c.chunks());
    } finally {
      this.#drop(c);
    }
  }

  /** Closes every connection (a stream being followed ends with an error). */
  close(): void {
    for (const c of [...this.#all]) this.#drop(c);
  }

  async #open(): Promise<Connection> {
    const c = new Connection(await Deno.connect({ transport: "unix", path: this.#socket }));
    this.#all.add(c);
    return c;
  }

  #drop(c: Connection): void {
    this.#all.delete(c);
    const at = this.#idle.indexOf(c);
    if (at >= 0) this.#idle.splice(at, 1);
    try {
      c.conn.close();
    } catch {
      // Closed already.
    }
  }
}
