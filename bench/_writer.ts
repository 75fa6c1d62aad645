/**
 * A stand-in for many shims at once, in one process: it holds the write end of every exit FIFO
 * it is told to open (as each isulad-shim holds its own) and, on command, writes a container's
 * exit status the way isulad-shim does (4 raw bytes) and closes the FIFO, noting the instant of
 * the write on the clock every benchmark process shares ({@linkcode nowMs}).
 *
 * Run as a child process (`deno run --allow-ffi --allow-read bench/_writer.ts`); drive it with
 * {@linkcode WriterProcess}. Protocol, one line each way:
 *
 * - `open\t<fifo>\t<fifo>…` → `opened <first index> <count>` (write-only, non-blocking: the
 *   daemon must already hold the read end, as after `create-fifo`)
 * - `exit <index> <code>` → `wrote <index> <ms>`
 * - `burst <code> <index> <index>…` → `burst <ms> <ms>…`, one time per index, written back to back
 * - `paced <gap ms> <code> <index> <index>…` → `paced <ms> <ms>…`, one write every `gap` ms (each
 *   on its own slot of a fixed schedule, so that a late write does not delay the next ones)
 * - any failure → `error <message>`
 *
 * @module
 */

import { encodeExitStatus } from "../src/supervisor/exit_status.ts";
import * as libc from "../src/sys/libc.ts";
import { nowMs } from "./_clock.ts";
import { lines } from "./_lines.ts";
import { type ReadyProcess, spawnReady } from "./_ready.ts";

const encoder = new TextEncoder();

async function serveCommands(): Promise<void> {
  const fds: number[] = [];
  const reply = (text: string) => {
    const bytes = encoder.encode(text + "\n");
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  };
  const writeExit = (index: number, status: Uint8Array<ArrayBuffer>): number => {
    const fd = fds[index];
    if (fd === undefined || fd < 0) throw new Error(`no open FIFO number ${index}`);
    const at = nowMs();
    libc.write(fd, status);
    libc.close(fd);
    fds[index] = -1;
    return at;
  };
  reply("ready");
  for await (const line of lines(Deno.stdin.readable)) {
    try {
      const [verb, ...args] = line.startsWith("open\t") ? line.split("\t") : line.split(" ");
      if (verb === "open") {
        const first = fds.length;
        for (const path of args) {
          fds.push(libc.open(path, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC));
        }
        reply(`opened ${first} ${args.length}`);
      } else if (verb === "exit") {
        const at = writeExit(Number(args[0]), encodeExitStatus(Number(args[1])));
        reply(`wrote ${args[0]} ${at}`);
      } else if (verb === "paced") {
        const gap = Number(args[0]);
        const status = encodeExitStatus(Number(args[1]));
        const times: number[] = [];
        const start = nowMs();
        for (const [k, i] of args.slice(2).entries()) {
          const wait = start + k * gap - nowMs();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          times.push(writeExit(Number(i), status));
        }
        reply(`paced ${times.join(" ")}`);
      } else if (verb === "burst") {
        const status = encodeExitStatus(Number(args[0]));
        const times = args.slice(1).map((i) => writeExit(Number(i), status));
        reply(`burst ${times.join(" ")}`);
      } else {
        reply(`error unknown command ${verb}`);
      }
    } catch (e) {
      reply(`error ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const fd of fds) if (fd >= 0) libc.close(fd);
}

/** Drives one writer process from the orchestrator. */
export class WriterProcess {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #replies: AsyncGenerator<string>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor({ child, replies }: ReadyProcess) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#replies = replies;
  }

  /** Starts a writer and waits for it to say it is ready. */
  static async start(): Promise<WriterProcess> {
    return new WriterProcess(
      await spawnReady("writer", Deno.execPath(), [
        "run",
        "--allow-ffi",
        "--allow-read",
        new URL(import.meta.url).pathname,
      ], "piped"),
    );
  }

  /** The writer's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** One request, one reply line, in order. */
  #ask(line: string): Promise<string> {
    const next = this.#queue.then(async () => {
      await this.#stdin.write(encoder.encode(line + "\n"));
      const { value, done } = await this.#replies.next();
      if (done) throw new Error("writer process ended");
      if (value.startsWith("error ")) throw new Error(`writer: ${value.slice(6)}`);
      return value;
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Opens the write ends of `fifos`; returns their indexes. */
  async open(fifos: readonly string[]): Promise<number[]> {
    if (fifos.length === 0) return [];
    const [, first, count] = (await this.#ask(["open", ...fifos].join("\t"))).split(" ");
    return Array.from({ length: Number(count) }, (_, i) => Number(first) + i);
  }

  /** Writes exit `code` into FIFO `index` and closes it; resolves to the instant of the write. */
  async exit(index: number, code: number): Promise<number> {
    return Number((await this.#ask(`exit ${index} ${code}`)).split(" ")[2]);
  }

  /** Writes `code` into every FIFO of `indexes` back to back; resolves to each write's instant. */
  async burst(indexes: readonly number[], code: number): Promise<number[]> {
    const reply = await this.#ask(`burst ${code} ${indexes.join(" ")}`);
    return reply.split(" ").slice(1).map(Number);
  }

  /**
   * Writes `code` into the FIFOs of `indexes`, one every `gapMs`; resolves to each write's
   * instant.
   */
  async paced(indexes: readonly number[], gapMs: number, code: number): Promise<number[]> {
    const reply = await this.#ask(`paced ${gapMs} ${code} ${indexes.join(" ")}`);
    return reply.split(" ").slice(1).map(Number);
  }

  /** Closes every write end it still holds and waits for the process to end. */
  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#replies.return(undefined);
  }
}

if (import.meta.main) await serveCommands();
