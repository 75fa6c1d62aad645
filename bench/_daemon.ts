/**
 * The real reaperd daemon for the benchmark: `deno run … main.ts serve --config <file>` on
 * temp paths, its socket API over the unix socket, its READY=1 (through a `NOTIFY_SOCKET` the
 * benchmark listens on), and what /proc says about it (RSS, descriptors).
 *
 * @module
 */

import { RawHttpClient } from "./_raw_http.ts";
import { nowMs } from "./_clock.ts";
import { sleep } from "./_stats.ts";

const REPO = new URL("../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;
// Deno 2.9 asks for --allow-all before it lets anything read /proc (process identity,
// mountinfo): run the daemon as `deno task start` does.
const PERMISSIONS = ["--allow-all"];
/** LimitNOFILE of systemd/reaperd.service. */
const NOFILE = 1_048_576;

/** What the benchmark puts in the daemon's config file. */
export interface BenchDaemonOptions {
  /** Working dir: socket, store, state root, config, log and notify socket live here. */
  dir: string;
  /** Runtime name → binary. */
  runtimes: Record<string, { path: string; args?: string[] }>;
  /** The state root (`<dir>/state` by default). */
  stateRoot?: string;
  /** GC knobs. */
  gc?: Record<string, number>;
  /** Other config keys. */
  extra?: Record<string, unknown>;
}

/** Memory of a process, from /proc/<pid>/status and smaps_rollup (KiB). */
export interface Memory {
  rssKiB: number;
  anonKiB: number;
  pssKiB: number;
}

/** Reads VmRSS, RssAnon and Pss of `pid` (KiB). */
export function readMemory(pid: number): Memory {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (text: string, name: string) => {
    const m = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    return m === null ? NaN : Number(m[1]);
  };
  let pss = NaN;
  try {
    pss = field(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`), "Pss");
  } catch {
    // Kernels without smaps_rollup.
  }
  return { rssKiB: field(status, "VmRSS"), anonKiB: field(status, "RssAnon"), pssKiB: pss };
}

/** How many descriptors `pid` holds. */
export function countFds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** A daemon started by the benchmark. */
export class BenchDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly stateRoot: string;
  readonly configPath: string;
  readonly logPath: string;
  #process: Deno.ChildProcess | null = null;
  #client: RawHttpClient | null = null;
  #notify: Deno.DatagramConn | null = null;
  /** When the process was spawned (shared clock, ms). */
  spawnedAt = NaN;
  /** When READY=1 arrived. */
  readyAt = NaN;
  /** When /v1/health first answered 200. */
  healthyAt = NaN;

  private constructor(dir: string, stateRoot = `${dir}/state`) {
    this.dir = dir;
    this.socket = `${dir}/reaperd.sock`;
    this.stateRoot = stateRoot;
    this.configPath = `${dir}/config.json`;
    this.logPath = `${dir}/daemon.log`;
  }

  /** Writes the config (unless it exists and `reuse`), starts the daemon, waits for READY=1. */
  static async start(options: BenchDaemonOptions): Promise<BenchDaemon> {
    const d = new BenchDaemon(options.dir, options.stateRoot);
    await Deno.mkdir(d.stateRoot, { recursive: true });
    await Deno.writeTextFile(
      d.configPath,
      JSON.stringify({
        socket: d.socket,
        db: `${d.dir}/reaperd.db`,
        stateRoot: d.stateRoot,
        runtimes: Object.fromEntries(
          Object.entries(options.runtimes).map((
            [k, v],
          ) => [k, { path: v.path, args: v.args ?? [] }]),
        ),
        gc: options.gc ?? {},
        ...options.extra,
      }),
    );
    await d.#spawn();
    return d;
  }

  /** Starts the daemon again on the same dir (store, socket, state root). */
  static async restart(dir: string): Promise<BenchDaemon> {
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const d = new BenchDaemon(dir, config.stateRoot);
    await d.#spawn();
    return d;
  }

  /** The daemon's pid. */
  get pid(): number {
    if (this.#process === null) throw new Error("daemon not running");
    return this.#process.pid;
  }

  /** Milliseconds from spawn to READY=1. */
  get startToReadyMs(): number {
    return this.readyAt - this.spawnedAt;
  }

  /** Milliseconds from spawn to the first healthy answer. */
  get startToHealthyMs(): number {
    return this.healthyAt - this.spawnedAt;
  }

  async #spawn(): Promise<void> {
    const notifyPath = `${this.dir}/notify.sock`;
    await Deno.remove(notifyPath).catch(() => {});
    this.#notify = Deno.listenDatagram({ transport: "unixpacket", path: notifyPath });
    const ready = this.#waitReady(this.#notify);
    // REAPERD_BENCH_DENO_FLAGS adds flags to the daemon's `deno run` (profiling: e.g.
    // `--v8-flags=--trace-gc`).
    const extra = (Deno.env.get("REAPERD_BENCH_DENO_FLAGS") ?? "").split(" ").filter((f) =>
      f !== ""
    );
    const argv = [
      Deno.execPath(),
      "run",
      ...PERMISSIONS,
      ...extra,
      MAIN,
      "serve",
      "--config",
      this.configPath,
    ];
    const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    // `exec` keeps the pid; stderr goes straight to a file so that logging costs the daemon
    // what it costs under journald, and nothing in this process.
    this.spawnedAt = nowMs();
    this.#process = new Deno.Command("/bin/sh", {
      // The descriptor limit systemd/reaperd.service gives (LimitNOFILE), where this user may.
      args: ["-c", `ulimit -n ${NOFILE} 2>/dev/null; exec ${quoted} >>'${this.logPath}' 2>&1`],
      cwd: REPO,
      env: { NOTIFY_SOCKET: notifyPath },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const exited = this.#process.status.then((s) => s);
    const outcome = await Promise.race([
      ready.then(() => "ready" as const),
      exited.then(() => "exited" as const),
      sleep(120_000).then(() => "timeout" as const),
    ]);
    if (outcome !== "ready") {
      throw new Error(`daemon ${outcome} before READY=1; log:\n${await this.logTail()}`);
    }
    for (;;) {
      try {
        if ((await this.api("GET", "/v1/health")).status === 200) break;
      } catch {
        // Not listening yet (READY=1 is sent after the socket is up, so this is rare).
      }
      await sleep(2);
    }
    this.healthyAt = nowMs();
  }

  async #waitReady(conn: Deno.DatagramConn): Promise<void> {
    for (;;) {
      const [data] = await conn.receive();
      const text = new TextDecoder().decode(data);
      if (text.split("\n").includes("READY=1")) {
        this.readyAt = nowMs();
        // Keep draining STATUS=/WATCHDOG= so the daemon never blocks on a full queue.
        (async () => {
          try {
            for (;;) await conn.receive();
          } catch {
            // Closed.
          }
        })();
        return;
      }
    }
  }

  /** The last lines of the daemon's log. */
  async logTail(lines = 30): Promise<string> {
    try {
      return (await Deno.readTextFile(this.logPath)).trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Calls the socket API; resolves to the status and the parsed JSON (or text). */
  async api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    this.#client ??= new RawHttpClient(this.socket);
    const res = await this.#client.request(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
    );
    try {
      return { status: res.status, body: JSON.parse(res.body) };
    } catch {
      return res;
    }
  }

  /** Calls the API and throws unless the status is `expect`. */
  async call(method: string, path: string, body?: unknown, expect = 200): Promise<unknown> {
    const res = await this.api(method, path, body);
    if (res.status !== expect) {
      throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  /** The Prometheus text of /metrics. */
  async metrics(): Promise<string> {
    const res = await this.api("GET", "/metrics");
    return String(res.body);
  }

  /** RSS and friends of the daemon now. */
  memory(): Memory {
    return readMemory(this.pid);
  }

  /**
   * Waits until the daemon's RSS holds still (within 1% over `quietMs`), at least `minMs` and
   * at most `maxMs`, and returns it. V8 gives the memory of a burst of garbage back only once
   * its memory reducer has run, some seconds after the allocation rate fell.
   */
  async settledMemory(minMs = 20_000, quietMs = 6_000, maxMs = 40_000): Promise<Memory> {
    const start = Date.now();
    let last = this.memory();
    let stableSince = Date.now();
    for (;;) {
      await sleep(1000);
      const now = this.memory();
      if (Math.abs(now.rssKiB - last.rssKiB) > last.rssKiB * 0.01) stableSince = Date.now();
      last = now;
      const elapsed = Date.now() - start;
      if ((elapsed >= minMs && Date.now() - stableSince >= quietMs) || elapsed >= maxMs) return now;
    }
  }

  /** Descriptors the daemon holds now. */
  fds(): number {
    return countFds(this.pid);
  }

  /** Stops the daemon (SIGTERM, then SIGKILL after `graceMs`) and waits for it. */
  async stop(graceMs = 20_000): Promise<Deno.CommandStatus> {
    this.#client?.close();
    this.#client = null;
    const p = this.#process;
    if (p === null) throw new Error("daemon not running");
    try {
      p.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        p.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, graceMs);
    const status = await p.status;
    clearTimeout(timer);
    this.#process = null;
    // REAPERD_BENCH_KEEP_LOGS=<dir> keeps each daemon's log (with what the flags above traced).
    const keep = Deno.env.get("REAPERD_BENCH_KEEP_LOGS");
    if (keep !== undefined && keep !== "") {
      await Deno.mkdir(keep, { recursive: true });
      await Deno.copyFile(this.logPath, `${keep}/daemon-${p.pid}.log`).catch(() => {});
    }
    try {
      this.#notify?.close();
    } catch {
      // Closed.
    }
    this.#notify = null;
    return status;
  }
}

/** CPU time (user + system) `pid` has used so far, in ms. */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (index 11 and 12 after the state), in clock ticks.
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
}
