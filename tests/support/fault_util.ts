/**
 * Helpers for the crash, fault and security tests: real containers under the test shim whose
 * exit code the test chooses, a stand-in runtime with per-container state, and small readers
 * of the daemon's API and of /proc.
 *
 * A container here is a test shim (tests/fixtures/test_shim.c) running `sh`, which waits on a
 * control FIFO (`ctl`, in the state dir) for the code it must exit with; its runtime state is
 * the directory `<stateDir>/<runtime>/<id>` that tests/support/crash_runtime.sh acts on.
 *
 * @module
 */

import { Errno, SysError } from "../../src/sys/errno.ts";
import * as libc from "../../src/sys/libc.ts";
import { readProcStat } from "../../src/sys/proc.ts";
import { type ExitEvent, isEvent, type ReaperEvent } from "../../src/store/events.ts";
import type { ContainerRecord, GcEntry } from "../../src/types.ts";
import { type RunningShim, startShim } from "../fixtures/shim.ts";
import type { TestDaemon } from "./daemon.ts";

// libc is opened once per process and never closed; open it at import, so that Deno's
// resource sanitizer does not take it for a library a test forgot to close.
libc.errno();

/** The stand-in runtime with per-container state (see its header). */
export const CRASH_RUNTIME = new URL("./crash_runtime.sh", import.meta.url).pathname;

/** The container's command: wait on `ctl` (a FIFO in its state dir) for its exit code. */
export const CONTAINER_ARGV = ["sh", "-c", 'read code < ctl; exit "$code"'];

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` every `everyMs` until it returns something other than null or false; throws
 * after `timeoutMs`. Unlike `until` (poll.ts), a probe that throws counts as "not yet" (the
 * daemon may be restarting), and the last error is shown on timeout.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | false> | T | null | false,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null && value !== false) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` + (last ? `: ${last}` : ""),
      );
    }
    await sleep(everyMs);
  }
}

/**
 * Tells a container to exit with `code` through its control FIFO. Its `sh` may not have
 * opened the FIFO yet right after start (ENXIO): retried for a while.
 */
export async function writeControl(stateDir: string, code: number): Promise<void> {
  const path = `${stateDir}/ctl`;
  const text = new TextEncoder().encode(`${code}\n`);
  const deadline = Date.now() + 5_000;
  for (;;) {
    let fd: number;
    try {
      fd = libc.open(path, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC);
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.ENXIO && Date.now() < deadline) {
        await sleep(5);
        continue;
      }
      throw e;
    }
    try {
      libc.write(fd, text);
    } finally {
      libc.close(fd);
    }
    return;
  }
}

/** GET a JSON answer; throws unless 200. */
export async function getJson<T>(daemon: TestDaemon, path: string): Promise<T> {
  const res = await daemon.api("GET", path);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.text}`);
  return res.body as T;
}

/** The whole event log (NDJSON, without follow). */
export async function allEvents(daemon: TestDaemon): Promise<ReaperEvent[]> {
  const res = await daemon.api("GET", "/v1/events?since=0");
  if (res.status !== 200) throw new Error(`events: ${res.status} ${res.text}`);
  return res.text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as ReaperEvent);
}

/** Container `id`'s `exit` event in the whole event log, or undefined when there is none. */
export async function exitEventOf(daemon: TestDaemon, id: string): Promise<ExitEvent | undefined> {
  return (await allEvents(daemon)).filter(isEvent("exit")).find((e) => e.id === id);
}

/** A container's record, or null when the daemon has none. */
export async function record(daemon: TestDaemon, id: string): Promise<ContainerRecord | null> {
  const res = await daemon.api("GET", `/v1/containers/${id}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`inspect ${id}: ${res.status} ${res.text}`);
  return res.body as ContainerRecord;
}

/** A container's GC entry (0 attempts while its first cleanup runs), or null once cleanup ended. */
export async function gcEntry(daemon: TestDaemon, id: string): Promise<GcEntry | null> {
  const res = await daemon.api("GET", `/v1/gc/${id}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`gc status ${id}: ${res.status} ${res.text}`);
  return (res.body as { entry: GcEntry }).entry;
}

/** Waits until the container's record is `stopped`; returns it. */
export function waitStopped(daemon: TestDaemon, id: string, timeoutMs = 10_000) {
  return waitFor(`${id} to be stopped`, async () => {
    const r = await record(daemon, id);
    return r !== null && r.state === "stopped" ? r : null;
  }, timeoutMs);
}

/** A metric's value from the Prometheus text (first sample whose name and labels match). */
export function metric(text: string, sample: string): number | null {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return null;
}

/** The daemon's open descriptors, as readlink shows them. */
export function openFds(pid: number): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`));
    } catch {
      // Closed while listing.
    }
  }
  return out;
}

/**
 * The daemon's descriptors less the pipes it shares with its live children (its path helpers
 * and runtime calls): those come and go with the helper pool, bounded by it, and are not leaks.
 */
export function openFdsBesideChildren(pid: number): string[] {
  const shared = new Set<string>();
  for (const child of childPids(pid)) {
    try {
      for (const link of openFds(child)) if (link.startsWith("pipe:")) shared.add(link);
    } catch {
      // Gone while listing.
    }
  }
  return openFds(pid).filter((link) => !shared.has(link));
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      out.push(...text.split(" ").filter((w) => w !== "").map(Number));
    } catch {
      // The thread ended while listing.
    }
  }
  return out;
}

/** Processes (not zombies, not in `except`) whose command line or cwd mentions `dir`. */
export function processesUnder(dir: string, except: number[] = []): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || except.includes(pid) || pid === Deno.pid) continue;
    const stat = readProcStat(pid);
    if (stat === null || stat.state === "Z") continue;
    let cmdline: string;
    let cwd = "";
    try {
      cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    } catch {
      continue;
    }
    try {
      cwd = Deno.readLinkSync(`/proc/${pid}/cwd`);
    } catch {
      // Gone, or a kernel thread.
    }
    if (cmdline.includes(dir) || cwd.startsWith(dir)) {
      found.push(`${pid} (${stat.comm}, state ${stat.state}) cwd=${cwd} ${cmdline}`);
    }
  }
  return found;
}

/** What {@linkcode startContainer} takes. */
export interface ContainerOptions {
  /** Container id. */
  id: string;
  /** Runtime name (its `--root` dir is made inside the state dir). */
  runtime: string;
  /** Deletes the stand-in runtime refuses first. */
  failDeletes?: number;
  /** A runtime subcommand that hangs. */
  hang?: string;
  /** Seconds every runtime call waits. */
  slow?: number;
  /** Container command; {@linkcode CONTAINER_ARGV} by default. */
  argv?: string[];
  /** Extra fields of the monitor request (mounts, paths, name). */
  monitor?: Record<string, unknown>;
  /** Skip the monitor call (the caller registers it). */
  noMonitor?: boolean;
}

/** A container started under the test shim and registered with the daemon. */
export interface TestContainer {
  id: string;
  stateDir: string;
  /** `<stateDir>/<runtime>/<id>`: the stand-in runtime's state for it. */
  runtimeState: string;
  shim: RunningShim;
  /** Makes it exit with `code`. */
  exit(code: number): Promise<void>;
}

/**
 * Starts a container the daemon's way: create-fifo (the daemon holds the read end), the
 * control FIFO and the runtime's state, the shim, then monitor with both identities.
 */
export async function startContainer(
  daemon: TestDaemon,
  opts: ContainerOptions,
): Promise<TestContainer> {
  const stateDir = `${daemon.stateRoot}/${opts.runtime}/${opts.id}`;
  const held = await daemon.api("POST", "/v1/fifos", { stateDir });
  if (held.status !== 200) throw new Error(`create-fifo ${opts.id}: ${held.status} ${held.text}`);
  libc.mkfifo(`${stateDir}/ctl`, 0o600);
  const runtimeState = `${stateDir}/${opts.runtime}/${opts.id}`;
  await Deno.mkdir(runtimeState, { recursive: true });
  if (opts.failDeletes) await Deno.writeTextFile(`${runtimeState}/fail`, `${opts.failDeletes}\n`);
  if (opts.hang) await Deno.writeTextFile(`${runtimeState}/hang`, `${opts.hang}\n`);
  if (opts.slow) await Deno.writeTextFile(`${runtimeState}/slow`, `${opts.slow}\n`);
  const shim = await startShim({
    stateDir,
    mode: { kind: "exec", argv: opts.argv ?? CONTAINER_ARGV },
  });
  if (!opts.noMonitor) {
    const res = await daemon.api("POST", "/v1/containers", {
      id: opts.id,
      runtime: opts.runtime,
      stateDir,
      pid: shim.container.pid,
      ppid: shim.shim.pid,
      startTime: shim.container.startTime,
      pStartTime: shim.shim.startTime,
      ...opts.monitor,
    });
    if (res.status !== 201) throw new Error(`monitor ${opts.id}: ${res.status} ${res.text}`);
  }
  return {
    id: opts.id,
    stateDir,
    runtimeState,
    shim,
    exit: (code) => writeControl(stateDir, code),
  };
}

/** The test's config for the stand-in runtime under `name`, logging to `log`. */
export function crashRuntime(
  name: string,
  log: string,
): Record<string, { path: string; args: string[] }> {
  return { [name]: { path: CRASH_RUNTIME, args: ["--log", log] } };
}

/** Lines of the stand-in runtime's log (empty when it has not run). */
export function runtimeLog(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Writes one line to stdout (tests report their counts this way). */
export function report(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
}

const FIXTURE_CACHE = new URL("../../.tmp/fixtures/", import.meta.url).pathname;

/**
 * Compiles `tests/support/<name>.c` (once; cached next to the test shim, rebuilt when the
 * source is newer) and returns the binary's path.
 */
async function buildHelper(name: string, flags: string[] = []): Promise<string> {
  const source = new URL(`./${name}.c`, import.meta.url).pathname;
  const out = `${FIXTURE_CACHE}${name}`;
  const mtime = (p: string) => {
    try {
      return Deno.statSync(p).mtime?.getTime() ?? 0;
    } catch {
      return null;
    }
  };
  const built = mtime(out);
  if (built !== null && built >= (mtime(source) ?? 0)) return out;
  await Deno.mkdir(FIXTURE_CACHE, { recursive: true });
  // Built under a private name and renamed, so that parallel test files never run half a file.
  const tmp = `${out}.${Deno.pid}.tmp`;
  const result = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", ...flags, "-o", tmp, source],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(`cc failed to build ${source}:\n${new TextDecoder().decode(result.stderr)}`);
  }
  await Deno.rename(tmp, out);
  return out;
}

/** The FUSE server that never answers a lookup (tests/support/fault_fuse_hang.c). */
export function buildFuseHang(): Promise<string> {
  return buildHelper("fault_fuse_hang");
}

/** The socket prober (tests/support/fault_connect.c). */
export function buildConnect(): Promise<string> {
  return buildHelper("fault_connect");
}

/** The test service manager with an fd store (tests/support/fd_store_manager.c). */
export function buildFdStoreManager(): Promise<string> {
  return buildHelper("fd_store_manager");
}

/** The pid taker (tests/support/fault_pid_reuse.c). */
export function buildPidReuse(): Promise<string> {
  return buildHelper("fault_pid_reuse", ["-pthread"]);
}

/** Reads lines from a child's stdout, one at a time. */
export class LineReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, or null at the end of the stream. */
  async next(): Promise<string | null> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#buffer += value;
    }
  }

  /** Stops reading (for `finally`). */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
