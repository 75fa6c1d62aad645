/**
 * Runs a helper program (runc, crun, …) with a hard deadline and captures what it said.
 * Helpers start through `posix_spawnp` ({@link ./spawn.ts}); their exit (a pidfd) and their
 * output pipes wait on one epoll loop, so a running helper costs three descriptors and no
 * thread, and starting one costs the main thread a fraction of a millisecond. Nothing here
 * throws for a helper that is missing, fails or hangs: the {@linkcode CommandResult} says so,
 * and the caller decides.
 *
 * @module
 */

import { signalName } from "../signal_names.ts";
import { Errno, SysError } from "./errno.ts";
import { EventLoop } from "./event_loop.ts";
import * as libc from "./libc.ts";
import { type ChildExit, reapChild, spawnChild, type SpawnedChild } from "./spawn.ts";
import { errorMessage } from "../error_message.ts";

/** How to run one command. */
export interface CommandOptions {
  /** SIGKILL the command after this many milliseconds. */
  timeoutMs: number;
  /** Extra environment variables, added to {@linkcode HELPER_ENV} (not the daemon's own). */
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
  /** The name of the signal that ended it ("SIGKILL"), or null. */
  signal: string | null;
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

/**
 * The whole environment a helper starts with: a fixed `PATH` and nothing of the daemon's own
 * (no secrets, no `LD_PRELOAD`, nothing an operator's shell left behind), the same for every
 * call, and nothing to copy per call.
 */
export const HELPER_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
});
const HELPER_ENVP = Object.entries(HELPER_ENV).map(([name, value]) => `${name}=${value}`);

/** Default cap on captured output per stream. */
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;

// A helper that forks (a shell script running `sleep`) can leave a grandchild holding the pipes
// after the helper itself is gone; its output is not worth waiting for past this.
const PIPE_GRACE_MS = 200;
// How often a child without a pidfd is checked for its exit.
const EXIT_POLL_MS = 10;

/** True when the command started, was not killed, and exited 0. */
export function isSuccess(result: CommandResult): boolean {
  return result.code === 0 && !result.timedOut && result.error === null;
}

/**
 * Runs `argv[0]` (searched in PATH when it has no slash) with `argv.slice(1)`, stdin from
 * /dev/null, stdout and stderr captured. After `timeoutMs` it sends SIGKILL and reports
 * `timedOut`. A missing program yields `notFound: true` and an `error` naming it; it never
 * throws.
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
  let child: SpawnedChild;
  try {
    child = await spawnChild({ argv, env: environment(opts.env), ...cwdOf(opts) });
  } catch (e) {
    return failed(...describeSpawnFailure(e, program, opts.cwd));
  }

  let loop: EventLoop;
  try {
    loop = acquireLoop();
  } catch (e) {
    libc.close(child.stdout);
    libc.close(child.stderr);
    // Killed at once and reaped in the background, so that no zombie is left behind.
    void new ExitWatch(null, child.pid, 0).ended;
    return failed(`${program}: cannot watch it: ${errorMessage(e)}`);
  }
  try {
    const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const stdout = new OutputTail(loop, child.stdout, max);
    const stderr = new OutputTail(loop, child.stderr, max);
    const exit = new ExitWatch(loop, child.pid, opts.timeoutMs);
    const status = await exit.ended;
    const [out, err] = await Promise.all([
      stdout.finish(PIPE_GRACE_MS),
      stderr.finish(PIPE_GRACE_MS),
    ]);
    return {
      argv,
      code: status.code,
      signal: status.signal === null ? null : signalName(status.signal),
      stdout: out,
      stderr: err,
      timedOut: exit.timedOut,
      durationMs: performance.now() - started,
      notFound: false,
      error: null,
    };
  } finally {
    await releaseLoop(loop);
  }
}

function cwdOf(opts: CommandOptions): { cwd?: string } {
  return opts.cwd === undefined ? {} : { cwd: opts.cwd };
}

/** The daemon's environment with `extra` laid over it, as `NAME=value` entries. */
function environment(extra: Record<string, string> | undefined): string[] {
  if (extra === undefined) return HELPER_ENVP;
  const env = { ...HELPER_ENV, ...extra };
  return Object.entries(env).map(([name, value]) => `${name}=${value}`);
}

function describeSpawnFailure(
  e: unknown,
  program: string,
  cwd: string | undefined,
): [string, boolean] {
  if (!(e instanceof SysError)) return [`${program}: cannot start: ${errorMessage(e)}`, false];
  if (e.errno === Errno.ENOENT) {
    // ENOENT also covers a missing working directory; say which one it was.
    if (cwd !== undefined && !exists(cwd)) {
      return [`${program}: working directory ${cwd} not found`, false];
    }
    return [`${program}: not found`, true];
  }
  if (e.errno === Errno.EACCES) return [`${program}: permission denied (not executable?)`, false];
  return [`${program}: cannot start: ${e.message}`, false];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

// One loop serves every helper in flight and stops when the last one is done, so that an idle
// daemon (or a test) keeps no epoll_wait pending.
let shared: { loop: EventLoop; users: number } | null = null;

function acquireLoop(): EventLoop {
  if (shared === null) {
    // Handlers below catch what they expect; anything else is a bug worth a crash report.
    const loop = new EventLoop((error) =>
      queueMicrotask(() => {
        throw error;
      })
    );
    loop.start();
    shared = { loop, users: 0 };
  }
  shared.users++;
  return shared.loop;
}

async function releaseLoop(loop: EventLoop): Promise<void> {
  if (shared === null || shared.loop !== loop) return;
  if (--shared.users > 0) return;
  shared = null;
  await loop.stop();
}

/**
 * Waits for one child's exit on its pidfd, and SIGKILLs it at the deadline. Without a pidfd
 * (no descriptor to spare, or a kernel before 5.3) it polls for the exit instead: slower to
 * notice, never lost.
 */
class ExitWatch {
  /** Settles with the reaped exit status. */
  readonly ended: Promise<ChildExit>;
  #timedOut = false;

  /** `loop` null: poll (the loop itself could not be had). */
  constructor(loop: EventLoop | null, pid: number, timeoutMs: number) {
    // Until this process reaps the child, its pid cannot name anyone else: signalling it by
    // pid is as safe as through the pidfd.
    let pidfd: number | null = null;
    try {
      if (loop !== null) pidfd = libc.pidfdOpen(pid);
    } catch {
      // No descriptor to spare, or no pidfd_open: polled below.
    }
    const { promise, resolve } = Promise.withResolvers<ChildExit>();
    this.ended = promise;
    const deadline = setTimeout(() => {
      this.#timedOut = true;
      try {
        if (pidfd === null) libc.kill(pid, 9);
        else libc.pidfdSendSignal(pidfd, 9);
      } catch {
        // It exited between the deadline and the kill: nothing left to stop.
      }
    }, timeoutMs);
    const reaped = (): boolean => {
      const exit = reapChild(pid);
      if (exit === null) return false;
      clearTimeout(deadline);
      resolve(exit);
      return true;
    };
    if (loop === null || pidfd === null) {
      const poll = setInterval(() => {
        if (reaped()) clearInterval(poll);
      }, EXIT_POLL_MS);
      return;
    }
    const fd = pidfd;
    loop.add(fd, () => {
      if (!reaped()) return;
      loop.remove(fd);
      libc.close(fd);
    });
  }

  /** True when the deadline passed and the child was killed for it. */
  get timedOut(): boolean {
    return this.#timedOut;
  }
}

const READ_CHUNK = 64 * 1024;
// Reads happen synchronously inside a ready handler, so one scratch buffer serves them all.
const scratch = new Uint8Array(READ_CHUNK);

/** Drains a child's output pipe as it arrives, keeping only its last `max` bytes. */
class OutputTail {
  readonly #loop: EventLoop;
  readonly #fd: number;
  readonly #max: number;
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  #open = true;
  readonly #eof = Promise.withResolvers<void>();

  constructor(loop: EventLoop, fd: number, max: number) {
    this.#loop = loop;
    this.#fd = fd;
    this.#max = max;
    loop.add(fd, () => this.#drain());
  }

  #drain(): void {
    for (;;) {
      let n: number | null;
      try {
        n = libc.read(this.#fd, scratch);
      } catch {
        n = 0; // a pipe error ends the capture; what arrived so far is kept
      }
      if (n === null) return;
      if (n === 0) {
        this.close();
        return;
      }
      this.#push(scratch.slice(0, n));
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

  /** Stops reading and closes the pipe (idempotent). */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#loop.remove(this.#fd);
    libc.close(this.#fd);
    this.#eof.resolve();
  }

  /** Waits up to `graceMs` for the end of the stream, then stops reading; returns the text. */
  async finish(graceMs: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.#eof.promise, late]);
    clearTimeout(timer);
    this.close();
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
