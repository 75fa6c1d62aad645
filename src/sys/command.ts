/**
 * Runs a helper program (runc, crun, …) with a hard deadline and captures what it said. The
 * pipes Deno gives a child are evented, so a running helper costs no thread of the blocking
 * pool. Nothing here throws for a helper that is missing, fails or hangs: the
 * {@linkcode CommandResult} says so, and the caller decides.
 *
 * @module
 */

/** How to run one command. */
export interface CommandOptions {
  /** SIGKILL the command after this many milliseconds. */
  timeoutMs: number;
  /** Extra environment variables, added to the daemon's own. */
  env?: Record<string, string>;
  /** Working directory; the daemon's own when absent. */
  cwd?: string;
  /** Keep at most this many bytes of each of stdout and stderr (the last ones). */
  maxOutputBytes?: number;
}

/** What happened to one command. */
export interface CommandResult {
  /** The argv that was run, for logs and step records. */
  argv: string[];
  /** Exit code, or null when the command was killed by a signal or never started. */
  code: number | null;
  /** The signal that ended it, or null. */
  signal: Deno.Signal | null;
  /** Its stdout (the last `maxOutputBytes`, decoded as UTF-8). */
  stdout: string;
  /** Its stderr (the last `maxOutputBytes`, decoded as UTF-8). */
  stderr: string;
  /** True when reaperd killed it for running past `timeoutMs`. */
  timedOut: boolean;
  /** Wall time from spawn to the end of its output (ms). */
  durationMs: number;
  /** True when the program does not exist (spawn failed with ENOENT). */
  notFound: boolean;
  /** Why the command could not be started, or null when it was. */
  error: string | null;
}

/** The shape of {@linkcode runCommand}, so that tests can run plans against a fake. */
export type CommandRunner = (argv: string[], opts: CommandOptions) => Promise<CommandResult>;

/** Default cap on captured output per stream. */
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;

// A helper that forks (a shell script running `sleep`) can leave a grandchild holding the pipes
// after the helper itself is gone; its output is not worth waiting for past this.
const PIPE_GRACE_MS = 200;

/** True when the command started, was not killed, and exited 0. */
export function isSuccess(result: CommandResult): boolean {
  return result.code === 0 && !result.timedOut && result.error === null;
}

/**
 * Runs `argv[0]` with `argv.slice(1)`, stdin from /dev/null, stdout and stderr captured.
 * After `timeoutMs` it sends SIGKILL and reports `timedOut`. A missing program yields
 * `notFound: true` and an `error` naming it; it never throws.
 *
 * @example
 * ```ts
 * import { runCommand } from "./command.ts";
 * const r = await runCommand(["/bin/echo", "hi"], { timeoutMs: 1000 });
 * console.assert(r.code === 0 && r.stdout === "hi\n");
 * ```
 */
export async function runCommand(argv: string[], opts: CommandOptions): Promise<CommandResult> {
  const started = performance.now();
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const failed = (error: string, notFound = false): CommandResult => ({
    argv,
    code: null,
    signal: null,
    stdout: "",
    stderr: "",
    timedOut: false,
    durationMs: performance.now() - started,
    notFound,
    error,
  });

  const program = argv[0];
  if (program === undefined || program === "") return failed("empty command line");

  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // ENOENT from spawn also covers a missing cwd; say which one it was.
      if (opts.cwd !== undefined && !exists(opts.cwd)) {
        return failed(`${program}: working directory ${opts.cwd} not found`);
      }
      return failed(`${program}: not found`, true);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      return failed(`${program}: permission denied (not executable?)`);
    }
    return failed(`${program}: cannot start: ${e instanceof Error ? e.message : String(e)}`);
  }

  const stdout = new TailCollector(child.stdout, max);
  const stderr = new TailCollector(child.stderr, max);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited between the deadline and the kill: nothing left to stop.
    }
  }, opts.timeoutMs);
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    clearTimeout(timer);
  }
  const [out, err] = await Promise.all([
    stdout.finish(PIPE_GRACE_MS),
    stderr.finish(PIPE_GRACE_MS),
  ]);
  return {
    argv,
    code: status.signal === null ? status.code : null,
    signal: status.signal,
    stdout: out,
    stderr: err,
    timedOut,
    durationMs: performance.now() - started,
    notFound: false,
    error: null,
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Drains a stream as it arrives, keeping only its last `max` bytes. */
class TailCollector {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #max: number;
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  readonly #done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, max: number) {
    this.#reader = stream.getReader();
    this.#max = max;
    this.#done = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await this.#reader.read();
        if (done) return;
        this.#push(value);
      }
    } catch {
      // A pipe error ends the capture; what arrived so far is kept.
    }
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#size += chunk.byteLength;
    while (
      this.#chunks.length > 1 && this.#size - (this.#chunks[0]?.byteLength ?? 0) >= this.#max
    ) {
      this.#size -= this.#chunks.shift()?.byteLength ?? 0;
    }
  }

  /** Waits up to `graceMs` for the end of the stream, then stops reading; returns the text. */
  async finish(graceMs: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), graceMs);
    });
    const outcome = await Promise.race([this.#done.then(() => "done" as const), late]);
    clearTimeout(timer);
    if (outcome === "late") {
      await this.#reader.cancel().catch(() => {});
      await this.#done;
    }
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.byteLength;
    }
    const tail = all.byteLength > this.#max ? all.subarray(all.byteLength - this.#max) : all;
    return new TextDecoder().decode(tail);
  }
}
