/**
 * Test support: the real reaperd daemon process on temp paths, its CLI, and its socket API.
 *
 * @module
 */

import { buildFdStoreManager, LineReader } from "./fault_util.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
// Deno 2.9 asks for --allow-all before it reads anything under /proc, and --allow-ffi
// already amounts to all access: the daemon runs with -A (see README).
const PERMISSIONS = ["--allow-all"];

/** What a test may set in the daemon's config file. */
export interface TestDaemonOptions {
  /** Runtime name → binary; default: "fake" → /bin/true (every cleanup command succeeds). */
  runtimes?: Record<string, { path: string; args?: string[] }>;
  /** GC knobs. */
  gc?: Record<string, number>;
  /** More config keys. */
  extra?: Record<string, unknown>;
  /** Extra environment for the daemon process. */
  env?: Record<string, string>;
  /** Reuse this dir (a restart keeps the same socket, store and state root). */
  dir?: string;
  /**
   * Run the daemon under the test service manager (tests/support/fd_store_manager.c) instead
   * of directly: `$NOTIFY_SOCKET` is set, and an fd store of `storeMax` fds (0: none, as with
   * systemd's default) hands kept fds back at every restart.
   */
  serviceManager?: { storeMax: number };
}

/** What the test service manager's fd store holds and did (see fd_store_manager.c). */
export interface FdStoreStats {
  stored: number;
  received: number;
  removed: number;
  refused: number;
  hup: number;
  duplicates: number;
  /** Messages whose fds the kernel could not pass on. */
  truncated: number;
}

interface Manager {
  process: Deno.ChildProcess;
  lines: LineReader;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running daemon for a test. */
export class TestDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly db: string;
  readonly stateRoot: string;
  readonly configPath: string;
  readonly #options: TestDaemonOptions;
  #process: Deno.ChildProcess | null = null;
  #stderr = "";
  #stderrDone: Promise<void> = Promise.resolve();
  #client: Deno.HttpClient | null = null;
  #manager: Manager | null = null;
  /** The daemon's pid when it runs under the manager. */
  #managedPid: number | null = null;

  private constructor(dir: string, options: TestDaemonOptions) {
    this.dir = dir;
    this.socket = `${dir}/reaperd.sock`;
    this.db = `${dir}/reaperd.db`;
    this.stateRoot = `${dir}/state`;
    this.configPath = `${dir}/config.json`;
    this.#options = options;
  }

  /** Writes a config file and starts the daemon; resolves once it answers on its socket. */
  static async start(options: TestDaemonOptions = {}): Promise<TestDaemon> {
    const dir = options.dir ?? await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
    const daemon = new TestDaemon(dir, options);
    await Deno.mkdir(daemon.stateRoot, { recursive: true });
    const runtimes = options.runtimes ?? { fake: { path: "/bin/true" } };
    await Deno.writeTextFile(
      daemon.configPath,
      JSON.stringify({
        socket: daemon.socket,
        db: daemon.db,
        stateRoot: daemon.stateRoot,
        runtimes: Object.fromEntries(
          Object.entries(runtimes).map(([k, v]) => [k, { path: v.path, args: v.args ?? [] }]),
        ),
        gc: { backoffBaseMs: 100, backoffMaxMs: 1000, ...options.gc },
        ...options.extra,
      }),
    );
    await daemon.#spawn();
    return daemon;
  }

  /** The daemon's pid. */
  get pid(): number {
    if (this.#managedPid !== null) return this.#managedPid;
    if (this.#process === null) throw new Error("daemon not running");
    return this.#process.pid;
  }

  /** The test service manager's pid, when the daemon runs under it. */
  get managerPid(): number | null {
    return this.#manager?.process.pid ?? null;
  }

  /** Everything the daemon wrote on stderr so far. */
  get logs(): string {
    if (this.#options.serviceManager === undefined) return this.#stderr;
    try {
      return Deno.readTextFileSync(`${this.dir}/daemon.log`);
    } catch {
      return "";
    }
  }

  /** The test service manager's fd store (only with `serviceManager`). */
  async fdStoreStats(): Promise<FdStoreStats> {
    const reply = await this.#managerCommand("stats");
    const stats: Record<string, number> = {};
    for (const pair of reply.split(" ").slice(1)) {
      const [k, v] = pair.split("=");
      stats[k!] = Number(v);
    }
    return stats as unknown as FdStoreStats;
  }

  /**
   * Stops (true) or resumes (false) the test service manager's reading of its socket: while it
   * is paused, the daemon finds the manager's queue full.
   */
  async pauseFdStore(paused: boolean): Promise<void> {
    const reply = await this.#managerCommand(paused ? "pause" : "resume");
    if (reply !== (paused ? "paused" : "resumed")) throw new Error(`service manager: ${reply}`);
  }

  async #managerCommand(line: string): Promise<string> {
    const m = this.#manager;
    if (m === null) throw new Error("no service manager");
    await m.writer.write(new TextEncoder().encode(`${line}\n`));
    const reply = await m.lines.next();
    if (reply === null) throw new Error(`service manager ended on ${JSON.stringify(line)}`);
    return reply;
  }

  async #startManager(storeMax: number): Promise<Manager> {
    const binary = await buildFdStoreManager();
    const process = new Deno.Command(binary, {
      args: [
        `${this.dir}/notify.sock`,
        String(storeMax),
        `${this.dir}/daemon.log`,
        "--",
        Deno.execPath(),
        "run",
        ...PERMISSIONS,
        MAIN,
        "serve",
        "--config",
        this.configPath,
      ],
      env: { ...this.#options.env },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = new LineReader(process.stdout);
    const first = await lines.next();
    if (first !== "ready") throw new Error(`service manager did not start: ${first}`);
    return { process, lines, writer: process.stdin.getWriter() };
  }

  async #spawnManaged(storeMax: number): Promise<void> {
    this.#manager ??= await this.#startManager(storeMax);
    // As systemd's Restart= would: a start that finds the store still locked (a helper the
    // killed daemon was starting may hold its descriptors until it execs) is tried again.
    for (let attempt = 1;; attempt++) {
      const logFrom = this.logs.length;
      const reply = await this.#managerCommand("start");
      const match = /^started (\d+)$/.exec(reply);
      if (match === null) throw new Error(`service manager: ${reply}`);
      this.#managedPid = Number(match[1]);
      const outcome = await this.#untilHealthy();
      if (outcome === "healthy") return;
      const log = this.logs.slice(logFrom);
      await this.stop("SIGKILL");
      if (outcome === "exited" && /is in use by/.test(log) && attempt < 5) {
        await new Promise((r) => setTimeout(r, 300));
        continue;
      }
      throw new Error(`daemon did not answer:\n${this.logs}`);
    }
  }

  async #untilHealthy(): Promise<"healthy" | "exited" | "timeout"> {
    // Restoring thousands of containers on a loaded machine takes a while.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const res = await this.api("GET", "/v1/health");
        if (res.status === 200) return "healthy";
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 50));
      try {
        if (Deno.readTextFileSync(`/proc/${this.#managedPid}/stat`).includes(") Z ")) {
          return "exited";
        }
      } catch {
        return "exited";
      }
      if (Date.now() > deadline) return "timeout";
    }
  }

  async #spawn(): Promise<void> {
    if (this.#options.serviceManager !== undefined) {
      return await this.#spawnManaged(this.#options.serviceManager.storeMax);
    }
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, MAIN, "serve", "--config", this.configPath],
      env: { ...this.#options.env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = this.#process.stderr.pipeThrough(new TextDecoderStream());
    this.#stderrDone = (async () => {
      for await (const chunk of stderr) this.#stderr += chunk;
    })();
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await this.api("GET", "/v1/health");
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      const exited = await Promise.race([
        this.#process.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 50)),
      ]);
      if (exited) {
        await this.#stderrDone;
        throw new Error(`daemon exited during start-up:\n${this.#stderr}`);
      }
      if (Date.now() > deadline) {
        // Never leave a daemon behind that the test can no longer reach.
        await this.stop("SIGKILL");
        throw new Error(`daemon did not answer:\n${this.#stderr}`);
      }
    }
  }

  /** Calls the socket API. */
  async api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; text: string }> {
    this.#client ??= Deno.createHttpClient({ proxy: { transport: "unix", path: this.socket } });
    const res = await fetch(`http://127.0.0.1${path}`, {
      method,
      client: this.#client,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: res.status, body: parsed, text };
  }

  /** Runs `reaperd <args…> --socket <this socket>` as a separate process. */
  async cli(...args: string[]): Promise<CliResult> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, MAIN, ...args],
      env: { REAPERD_SOCKET: this.socket },
      stdin: "null",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  }

  /** Stops the daemon with `signal` and waits for it to end. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    this.#client?.close();
    this.#client = null;
    if (this.#managedPid !== null) {
      const number = signal === "SIGKILL" ? 9 : signal === "SIGINT" ? 2 : 15;
      const reply = await this.#managerCommand(`kill ${number}`);
      this.#managedPid = null;
      const [kind, value] = reply.split(" ");
      const code = kind === "exited" ? Number(value) : 128 + Number(value);
      return { success: code === 0, code, signal: null };
    }
    const p = this.#process;
    if (p === null) throw new Error("daemon not running");
    try {
      p.kill(signal);
    } catch {
      // Already gone.
    }
    const status = await p.status;
    await this.#stderrDone;
    this.#process = null;
    return status;
  }

  /** Starts the daemon again on the same dir, socket, store and state root. */
  async restart(): Promise<void> {
    if (this.#process !== null || this.#managedPid !== null) throw new Error("stop it first");
    await this.#spawn();
  }

  /** Stops the daemon if it runs (SIGKILL) and removes its dir. */
  async dispose(): Promise<void> {
    if (this.#process !== null || this.#managedPid !== null) await this.stop("SIGKILL");
    if (this.#manager !== null) {
      await this.#managerCommand("quit").catch(() => {});
      await this.#manager.writer.close().catch(() => {});
      await this.#manager.lines.cancel();
      await this.#manager.process.status;
      this.#manager = null;
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
