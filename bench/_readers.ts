/**
 * Read load on the daemon's socket, from a process of its own: `count` keep-alive connections,
 * each sending `GET /v1/containers` (`ps`) and `GET /v1/containers/<id>` (`inspect`) in turn,
 * one request at a time per connection, as fast as the daemon answers. Raw HTTP/1.1 over unix
 * sockets, so that five hundred clients cost this process little.
 *
 * Run as a child process (`deno run -A bench/_readers.ts <socket> <count> <id>,<id>…`); it says
 * `ready` once every connection is open, and on a line on stdin (or stdin closing) stops and
 * says `done <requests> <errors> <bytes>`. Drive it with {@linkcode ReaderProcess}.
 *
 * @module
 */

import { lines } from "./_lines.ts";
import { Connection } from "./_raw_http.ts";
import { type ReadyProcess, spawnReady } from "./_ready.ts";

const encoder = new TextEncoder();

async function runReaders(socket: string, count: number, ids: string[]): Promise<void> {
  const conns: Connection[] = [];
  for (let i = 0; i < count; i++) {
    conns.push(new Connection(await Deno.connect({ transport: "unix", path: socket })));
  }
  let stop = false;
  let requests = 0;
  let errors = 0;
  let bytes = 0;
  const loops = conns.map(async (conn, i) => {
    for (let k = 0; !stop; k++) {
      const path = (i + k) % 2 === 0
        ? "/v1/containers"
        : `/v1/containers/${ids[(i * 7 + k) % ids.length]}`;
      try {
        await conn.send("GET", path);
        const { status, length, chunked } = await conn.head();
        const body = await conn.body(length, chunked);
        if (status !== 200) errors++;
        requests++;
        bytes += length ?? encoder.encode(body).length;
      } catch {
        // Includes the daemon closing the connection.
        errors++;
        return;
      }
    }
  });
  const out = (text: string) => Deno.stdout.writeSync(encoder.encode(text + "\n"));
  out("ready");
  for await (const _ of lines(Deno.stdin.readable)) break;
  stop = true;
  await Promise.race([Promise.allSettled(loops), new Promise((r) => setTimeout(r, 5000))]);
  for (const conn of conns) {
    try {
      conn.conn.close();
    } catch {
      // Closed by the daemon.
    }
  }
  out(`done ${requests} ${errors} ${bytes}`);
}

/** Drives a reader process from the orchestrator. */
export class ReaderProcess {
  readonly #child: Deno.ChildProcess;
  readonly #replies: AsyncGenerator<string>;
  readonly #started: number;

  private constructor({ child, replies }: ReadyProcess) {
    this.#child = child;
    this.#replies = replies;
    this.#started = performance.now();
  }

  /** Starts `count` readers of `ids` on `socket`; resolves once all are connected. */
  static async start(
    socket: string,
    count: number,
    ids: readonly string[],
  ): Promise<ReaderProcess> {
    return new ReaderProcess(
      await spawnReady("readers", Deno.execPath(), [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        socket,
        String(count),
        ids.join(","),
      ], "piped"),
    );
  }

  /** The reader process's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Stops the load; resolves to what it did. */
  async stop(): Promise<{ requests: number; errors: number; bytes: number; perSecond: number }> {
    const w = this.#child.stdin.getWriter();
    await w.write(encoder.encode("stop\n")).catch(() => {});
    await w.close().catch(() => {});
    const { value } = await this.#replies.next();
    const seconds = (performance.now() - this.#started) / 1000;
    await this.#child.status;
    const [, requests, errors, bytes] = String(value).split(" ").map(Number);
    return {
      requests: requests!,
      errors: errors!,
      bytes: bytes!,
      perSecond: requests! / seconds,
    };
  }
}

if (import.meta.main) {
  const [socket, count, ids] = Deno.args;
  await runReaders(socket!, Number(count), ids!.split(","));
}
