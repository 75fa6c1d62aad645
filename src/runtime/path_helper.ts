/**
 * The daemon's side of the path helper (path_helper_serve.ts): a few long-lived helper
 * processes, fed one {@linkcode PathOp} at a time over a pipe, so that an unmount or remove on
 * a filesystem that never answers blocks a helper, never the daemon's loop, and never puts the
 * daemon itself into uninterruptible sleep (a process with one thread in D state cannot die,
 * so a worker thread would not do). A helper that does not answer within the step timeout is
 * killed; one that cannot even die (D state) is left behind and reported, and no second
 * helper is sent to the same path while it stays stuck, so a hung mount costs one process,
 * not one per retry.
 *
 * Helpers start through `posix_spawnp` on Deno's blocking pool (spawn.ts) and are read through
 * an epoll loop (event_loop.ts) that runs only while a request is in flight.
 *
 * @module
 */

import { errorMessage } from "../error_message.ts";
import { Errno, SysError } from "../sys/errno.ts";
import { EventLoop } from "../sys/event_loop.ts";
import * as libc from "../sys/libc.ts";
import { readProcStat } from "../sys/proc.ts";
import { isAtOrUnder } from "../sys/mounts.ts";
import { reapChild, spawnChild } from "../sys/spawn.ts";
import type { PathOp, PathOpResult } from "./path_ops.ts";
import { PATH_HELPER_COMMAND } from "./path_helper_serve.ts";

/** What a path request came to, with the stuck helper's /proc state when it hung. */
export interface PathRunResult extends PathOpResult {
  /** The /proc state char of a helper that hung and would not die ("D"), else absent. */
  procState?: string;
}

/** Runs path ops somewhere a hang cannot reach the caller. */
export interface PathRunner {
  /** Runs `op`, giving up (and killing whatever ran it) after `timeoutMs`. Never throws. */
  run(op: PathOp, timeoutMs: number): Promise<PathRunResult>;
}

/** How a {@linkcode PathHelperPool} starts and keeps its helpers. */
export interface PathHelperOptions {
  /** The helper's command line; `deno run` of path_helper_main.ts with this deno by default. */
  argv?: string[];
  /**
   * Requests in flight at once (one helper each); more wait their turn. Default 4: a path that
   * hangs holds its helper until the step timeout, and the others go on meanwhile.
   */
  maxHelpers?: number;
  /** Idle helpers end after this long without work (ms). Default 60 s. */
  idleMs?: number;
  /** How long a helper may take to say `ready` (ms). Default 20 s. */
  startTimeoutMs?: number;
  /** Stuck helpers (about 40 MB each) kept before every request is refused. Default 8. */
  maxStuck?: number;
}

/**
 * The default helper command line: this deno running path_helper_main.ts where the sources are
 * at hand; else (a bundle) the daemon's own main module, or (a compiled binary) the binary
 * itself, with the hidden {@linkcode PATH_HELPER_COMMAND}.
 */
export function defaultHelperArgv(): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), PATH_HELPER_COMMAND];
  const flags = ["run", "--allow-all", "--no-config", "--quiet"];
  const script = new URL("./path_helper_main.ts", import.meta.url);
  if (script.protocol === "file:" && isFile(script.pathname)) {
    return [Deno.execPath(), ...flags, "--no-lock", script.pathname];
  }
  return [Deno.execPath(), ...flags, "--cached-only", Deno.mainModule, PATH_HELPER_COMMAND];
}

// What systemd hands the daemon is the daemon's alone: a helper must never notify or listen.
const DAEMON_ONLY =
  /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES)$/;

function helperEnvironment(): string[] {
  const env = { ...Deno.env.toObject(), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
  return Object.entries(env)
    .filter(([name]) => !DAEMON_ONLY.test(name))
    .map(([name, value]) => `${name}=${value}`);
}

// The daemon's own code, looked at once when the pool is built; never a container's path.
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

// How long a killed helper gets to die before it counts as stuck.
const KILL_GRACE_MS = 300;
const POLL_MS = 10;
const STDERR_TAIL = 2048;

interface StuckHelper {
  pid: number;
  /** The path it was working on. */
  key: string;
  timeoutMs: number;
}

/**
 * Reads what the non-blocking `fd` holds now, handing each chunk to `onBytes` (a view of `buf`,
 * valid during the call). True when it reached the end (or a read failed: nothing more will
 * come), false when it is empty with a writer.
 */
function readAvailable(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  onBytes: (bytes: Uint8Array) => void,
): boolean {
  for (;;) {
    let n: number | null;
    try {
      n = libc.read(fd, buf);
    } catch {
      return true;
    }
    if (n === null) return false;
    if (n === 0) return true;
    onBytes(buf.subarray(0, n));
  }
}

type Answer = { kind: "line"; text: string } | { kind: "eof" } | { kind: "timeout" };

/** One running helper process. */
class Helper {
  readonly pid: number;
  readonly #stdin: number;
  readonly #stdout: number;
  readonly #stderr: number;
  #text = "";
  #stderrTail = "";
  #eof = false;
  #closed = false;
  #waiter: (() => void) | null = null;
  readonly #decoder = new TextDecoder();
  readonly #errDecoder = new TextDecoder();
  readonly #buf = new Uint8Array(4096);

  constructor(child: { pid: number; stdin: number; stdout: number; stderr: number }) {
    this.pid = child.pid;
    this.#stdin = child.stdin;
    this.#stdout = child.stdout;
    this.#stderr = child.stderr;
  }

  /** The last of what it wrote on stderr (read now, for a helper that just ended). */
  get stderrTail(): string {
    this.#drainStderr();
    return this.#stderrTail.trim();
  }

  /** Writes one request line. Throws SysError (EPIPE when the helper is gone). */
  send(line: string): void {
    const bytes = new TextEncoder().encode(line + "\n");
    let at = 0;
    while (at < bytes.byteLength) {
      const n = libc.write(this.#stdin, bytes.slice(at));
      if (n <= 0) throw new SysError("write", Errno.EAGAIN, `path helper ${this.pid}`);
      at += n;
    }
  }

  /** Waits for the next line on its stdout (watched on `loop`), its end, or the deadline. */
  async next(loop: EventLoop, timeoutMs: number): Promise<Answer> {
    const take = (): Answer | null => {
      const nl = this.#text.indexOf("\n");
      if (nl >= 0) {
        const text = this.#text.slice(0, nl);
        this.#text = this.#text.slice(nl + 1);
        return { kind: "line", text };
      }
      return this.#eof ? { kind: "eof" } : null;
    };
    const ready = take();
    if (ready !== null) return ready;
    loop.add(this.#stdout, () => this.#drain());
    loop.add(this.#stderr, () => this.#drainStderr());
    const deadline = performance.now() + timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      for (;;) {
        const { promise, resolve } = Promise.withResolvers<boolean>();
        this.#waiter = () => resolve(true);
        timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
        // Whatever arrived between the last look and the watch.
        this.#drain();
        const early = take();
        if (early !== null) return early;
        const woke = await promise;
        clearTimeout(timer);
        this.#waiter = null;
        const answer = take();
        if (answer !== null) return answer;
        if (!woke) return { kind: "timeout" };
      }
    } finally {
      clearTimeout(timer);
      this.#waiter = null;
      loop.remove(this.#stdout);
      loop.remove(this.#stderr);
    }
  }

  #drain(): void {
    if (this.#closed || this.#eof) return;
    this.#eof = readAvailable(this.#stdout, this.#buf, (bytes) => {
      this.#text += this.#decoder.decode(bytes, { stream: true });
    });
    if (this.#eof || this.#text.includes("\n")) this.#waiter?.();
  }

  #drainStderr(): void {
    if (this.#closed) return;
    readAvailable(this.#stderr, this.#buf, (bytes) => {
      this.#stderrTail = (this.#stderrTail + this.#errDecoder.decode(bytes)).slice(-STDERR_TAIL);
    });
  }

  /** True once it has exited and been reaped. */
  reaped(): boolean {
    try {
      return reapChild(this.pid) !== null;
    } catch (e) {
      // ECHILD: reaped already.
      return e instanceof SysError;
    }
  }

  /** SIGKILL. Until it is reaped its pid cannot name another process. */
  kill(): void {
    try {
      libc.kill(this.pid, 9);
    } catch {
      // Already gone.
    }
  }

  /** Closes the daemon's ends of its pipes (idempotent); closing stdin asks it to end. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.#stdin);
    libc.close(this.#stdout);
    libc.close(this.#stderr);
  }
}

/** A few long-lived path helpers. One instance serves the whole daemon. */
export class PathHelperPool implements PathRunner {
  readonly #argv: string[];
  readonly #maxHelpers: number;
  readonly #startTimeoutMs: number;
  readonly #maxStuck: number;
  readonly #idleMs: number;
  readonly #idle: Helper[] = [];
  readonly #retiring: Helper[] = [];
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #stuck: StuckHelper[] = [];
  readonly #waiting: (() => void)[] = [];
  #busy = 0;
  #loop: { loop: EventLoop; users: number } | null = null;
  #closed = false;

  /** Builds a pool; no helper starts before the first request. */
  constructor(options: PathHelperOptions = {}) {
    this.#argv = options.argv ?? defaultHelperArgv();
    this.#maxHelpers = options.maxHelpers ?? 4;
    this.#idleMs = options.idleMs ?? 60_000;
    this.#startTimeoutMs = options.startTimeoutMs ?? 20_000;
    this.#maxStuck = options.maxStuck ?? 8;
  }

  /** Helpers left behind because they would not die, with their current /proc state. */
  stuck(): { pid: number; path: string; state: string }[] {
    this.#sweep();
    return this.#stuck.map((s) => ({
      pid: s.pid,
      path: s.key,
      state: readProcStat(s.pid)?.state ?? "?",
    }));
  }

  /** Runs `op` in a helper. Never throws. */
  async run(op: PathOp, timeoutMs: number): Promise<PathRunResult> {
    if (this.#closed) return { ok: false, detail: "path helpers are shut down", code: "EIO" };
    const key = op.op === "remove-state-dir" ? op.dir : op.path;
    const what = `${op.op} ${key}`;
    // The longest one request like this holds a helper: a start, the op, the kill's grace.
    const waitMs = this.#startTimeoutMs + timeoutMs + KILL_GRACE_MS;
    if (!await this.#take(waitMs)) {
      return {
        ok: false,
        code: "ETIMEDOUT",
        detail: `${what}: not tried: no path helper came free within ${waitMs} ms`,
      };
    }
    // Checked once a helper is free: the stuck helpers may have grown while this request waited.
    const refusal = this.#refusal(key, what);
    if (refusal !== null) {
      this.#give();
      return refusal;
    }
    const loop = this.#acquireLoop();
    try {
      return await this.#exchange(loop, op, key, what, timeoutMs);
    } catch (e) {
      return { ok: false, code: "EIO", detail: `${what}: path helper: ${errorMessage(e)}` };
    } finally {
      await this.#releaseLoop();
      this.#give();
    }
  }

  /** Why a request for `key` must not go to a helper now, or null when it may. */
  #refusal(key: string, what: string): PathRunResult | null {
    if (this.#closed) return { ok: false, detail: "path helpers are shut down", code: "EIO" };
    this.#sweep();
    // A path at, under or above one a helper hangs on reaches the same dead filesystem.
    const earlier = this.#stuck.find((s) => isAtOrUnder(key, s.key) || isAtOrUnder(s.key, key));
    if (earlier !== undefined) {
      const state = readProcStat(earlier.pid)?.state ?? "?";
      return {
        ok: false,
        code: "ETIMEDOUT",
        detail: `${what}: still hung: the helper that got no answer within ` +
          `${earlier.timeoutMs} ms (pid ${earlier.pid}) is stuck in state ${state} after ` +
          `SIGKILL; no other helper is sent there until it ends`,
        procState: state,
      };
    }
    if (this.#stuck.length >= this.#maxStuck) {
      return {
        ok: false,
        code: "ETIMEDOUT",
        detail: `${what}: not tried: ${this.#stuck.length} path helpers are stuck on hung ` +
          `filesystems (${this.#stuck.map((s) => s.key).join(", ")})`,
        procState: readProcStat(this.#stuck[0]?.pid ?? 0)?.state ?? "?",
      };
    }
    return null;
  }

  async #exchange(
    loop: EventLoop,
    op: PathOp,
    key: string,
    what: string,
    timeoutMs: number,
  ): Promise<PathRunResult> {
    let helper = this.#idle.pop();
    if (helper !== undefined) {
      try {
        helper.send(JSON.stringify(op));
      } catch {
        // It died while idle (EPIPE): a fresh one takes the request.
        helper.close();
        helper.kill();
        helper.reaped();
        helper = undefined;
      }
    }
    if (helper === undefined) {
      const started = await this.#start(loop, key);
      if (typeof started === "string") {
        return { ok: false, code: "EIO", detail: `${what}: ${started}` };
      }
      helper = started;
      try {
        helper.send(JSON.stringify(op));
      } catch (e) {
        // It ended (or closed its stdin) right after its ready: nothing may be left open.
        helper.close();
        await this.#kill(helper, key, timeoutMs);
        return {
          ok: false,
          code: "EIO",
          detail: `${what}: the path helper (pid ${helper.pid}) took no request: ` +
            errorMessage(e),
        };
      }
    }
    const answer = await helper.next(loop, timeoutMs);
    if (answer.kind === "line") {
      this.#park(helper);
      try {
        return JSON.parse(answer.text) as PathOpResult;
      } catch {
        return { ok: false, code: "EIO", detail: `${what}: path helper said ${answer.text}` };
      }
    }
    if (answer.kind === "eof") {
      const said = helper.stderrTail;
      helper.close();
      // Its output may end while it hangs in the op: one that will not die is stuck there.
      await this.#kill(helper, key, timeoutMs);
      return {
        ok: false,
        code: "EIO",
        detail: `${what}: the path helper (pid ${helper.pid}) ended without an answer` +
          (said === "" ? "" : `: ${said}`),
      };
    }
    const died = await this.#kill(helper, key, timeoutMs);
    helper.close();
    const base = `${what}: no answer within ${timeoutMs} ms; path helper pid ${helper.pid} killed`;
    if (died) return { ok: false, code: "ETIMEDOUT", detail: base };
    const state = readProcStat(helper.pid)?.state ?? "?";
    return {
      ok: false,
      code: "ETIMEDOUT",
      detail: `${base} but stuck in state ${state} (left behind)`,
      procState: state,
    };
  }

  /** Starts a helper and waits for its `ready`; a string says why it could not. */
  async #start(loop: EventLoop, key: string): Promise<Helper | string> {
    let child;
    try {
      child = await spawnChild({
        argv: this.#argv,
        env: helperEnvironment(),
        cwd: "/",
        stdin: "pipe",
      });
    } catch (e) {
      return `cannot start the path helper ${this.#argv[0]}: ${errorMessage(e)}`;
    }
    const helper = new Helper(child);
    const hello = await helper.next(loop, this.#startTimeoutMs);
    if (hello.kind === "line" && hello.text === "ready") return helper;
    // One that will not die is left behind like one stuck mid-request, and counts the same.
    await this.#kill(helper, key, this.#startTimeoutMs);
    const said = helper.stderrTail;
    helper.close();
    return `the path helper (pid ${helper.pid}) did not start: ` +
      (hello.kind === "timeout" ? `no "ready" within ${this.#startTimeoutMs} ms` : "it ended") +
      (said === "" ? "" : `: ${said}`);
  }

  /**
   * SIGKILLs `helper` and waits up to the grace time for it to be reaped; true when it was. One
   * that will not die (D state) is left behind as stuck on `key`, the path it was sent to.
   */
  async #kill(helper: Helper, key: string, timeoutMs: number): Promise<boolean> {
    helper.kill();
    if (await this.#settle(helper)) return true;
    this.#stuck.push({ pid: helper.pid, key, timeoutMs });
    return false;
  }

  /** Waits up to the grace time for a killed helper to be reaped; true when it was. */
  async #settle(helper: Helper): Promise<boolean> {
    const deadline = performance.now() + KILL_GRACE_MS;
    for (;;) {
      if (helper.reaped()) return true;
      if (performance.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Forgets stuck helpers that have died since (reaping them), and idle ones that died. */
  #sweep(): void {
    for (let i = this.#stuck.length - 1; i >= 0; i--) {
      const s = this.#stuck[i];
      if (s === undefined) continue;
      let gone: boolean;
      try {
        gone = reapChild(s.pid) !== null;
      } catch {
        gone = true;
      }
      if (gone) this.#stuck.splice(i, 1);
    }
    for (const list of [this.#idle, this.#retiring]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const h = list[i];
        if (h !== undefined && h.reaped()) {
          h.close();
          list.splice(i, 1);
        }
      }
    }
  }

  /** Keeps a helper that answered for the next request, or lets it go. */
  #park(helper: Helper): void {
    if (this.#closed) {
      this.#retire(helper);
      return;
    }
    this.#idle.push(helper);
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      for (const h of this.#idle.splice(0)) this.#retire(h);
    }, this.#idleMs);
    Deno.unrefTimer(this.#idleTimer);
  }

  /** Closes its stdin, which ends it; it is reaped by a later sweep. */
  #retire(helper: Helper): void {
    helper.close();
    if (!helper.reaped()) this.#retiring.push(helper);
  }

  /**
   * Takes a helper slot, waiting at most `timeoutMs` for one to come free; false when none did,
   * so a cleanup queued behind helpers on hung filesystems fails its step rather than waiting on.
   */
  async #take(timeoutMs: number): Promise<boolean> {
    if (this.#busy < this.#maxHelpers) {
      this.#busy++;
      return true;
    }
    return await new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(wake);
        if (at >= 0) this.#waiting.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      this.#waiting.push(wake);
    });
  }

  #give(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#busy--;
    else next();
  }

  // The loop runs only while a request is in flight: an idle daemon keeps no wait pending.
  #acquireLoop(): EventLoop {
    if (this.#loop === null) {
      const loop = new EventLoop((error) =>
        queueMicrotask(() => {
          throw error;
        })
      );
      loop.start();
      this.#loop = { loop, users: 0 };
    }
    this.#loop.users++;
    return this.#loop.loop;
  }

  async #releaseLoop(): Promise<void> {
    const held = this.#loop;
    if (held === null || --held.users > 0) return;
    this.#loop = null;
    await held.loop.stop();
  }

  /**
   * Ends the idle helpers (their stdin closes; they exit) and refuses further requests.
   * Stuck helpers stay where they are: nothing can end them but their filesystem.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    const idle = [...this.#idle.splice(0), ...this.#retiring.splice(0)];
    for (const h of idle) h.close();
    for (const h of idle) {
      const deadline = performance.now() + 2_000;
      while (!h.reaped()) {
        if (performance.now() > deadline) {
          h.kill();
          await this.#settle(h);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
  }
}
