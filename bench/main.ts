/**
 * `deno task bench`: reaperd's benchmarks against the real daemon process. For each level N
 * (100, 1,000 and 10,000 monitored containers) a fresh daemon is started on temp paths and
 * measured for memory, descriptors, exit latency, a burst of exits and GC throughput; the
 * largest level's daemon is then restarted on its store to time the restore; then exit
 * recording under read load (read_load.ts: 500 keep-alive `ps`/`inspect` clients in a process
 * of their own, 200 containers); last, conmon is measured supervising real runc containers. Prints a table and writes it, with the machine,
 * to `bench/RESULTS.md` (with `bench/NOTES.md`, the hand-written analysis, appended).
 *
 * Flags: `--levels=100,1000,10000` `--rounds=200` (exit latency samples per level)
 * `--burst=1000` `--gc=1000` `--restore-gc=10000` `--readers=500` `--conmon=20` (0 skips it)
 * `--out=bench/RESULTS.md` (`--out=` writes nothing).
 *
 * @module
 */

import { nowMs } from "./_clock.ts";
import { BenchDaemon, cpuMs, type Memory } from "./_daemon.ts";
import { EventFeed } from "./_events.ts";
import { ghostIdentity, registerContainers } from "./_fleet.ts";
import { describeMachine, loadAverage, type Machine } from "./_machine.ts";
import { fmt, fmtSummary, markdownTable, sleep } from "./_stats.ts";
import { WriterProcess } from "./_writer.ts";
import { type BurstResult, measureBurst } from "./burst.ts";
import { type Ceilings, measureCeilings } from "./ceilings.ts";
import { type ConmonResult, measureConmon } from "./conmon.ts";
import { type GcResult, measureGc } from "./gc.ts";
import { type LatencyResult, measureExitLatency } from "./latency.ts";
import { measureReadLoad, type ReadLoadResult } from "./read_load.ts";
import { measureRestore, type RestoreResult } from "./restore.ts";

/** What one level measured. */
interface LevelResult {
  n: number;
  /** Fresh daemon, empty store: spawn → READY=1 (ms). */
  readyEmptyMs: number;
  /** 2 s after start, nothing done yet. */
  cold: Memory;
  /** After the warm-up, settled, 0 monitored. */
  idle: Memory;
  idleFds: number;
  atN: Memory;
  fdsAtN: number;
  /** Containers registered per second (create-fifo + open + monitor). */
  registerPerSecond: number;
  latency: LatencyResult;
  burst: BurstResult;
  /** Daemon CPU per exit during the burst, cleanup included (ms). */
  burstCpuPerExitMs: number;
  gc: GcResult;
  /** Daemon CPU per GC entry (ms). */
  gcCpuPerEntryMs: number;
}

interface Options {
  levels: number[];
  rounds: number;
  burst: number;
  gc: number;
  restoreGc: number;
  readers: number;
  conmon: number;
  out: string;
}

const encoder = new TextEncoder();
/** Containers run one by one through the whole exit path before the idle RSS is read. */
const WARM_UP = 20;

function print(text = ""): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

function progress(text: string): void {
  Deno.stderr.writeSync(
    encoder.encode(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`),
  );
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    levels: [100, 1_000, 10_000],
    rounds: 200,
    burst: 1_000,
    gc: 1_000,
    restoreGc: 10_000,
    readers: 500,
    conmon: 20,
    out: new URL("./RESULTS.md", import.meta.url).pathname,
  };
  for (const arg of args) {
    const m = arg.match(/^--([a-z-]+)=(.*)$/);
    if (m === null) throw new Error(`unknown argument ${arg} (flags look like --rounds=200)`);
    const [, key, value] = m;
    const int = () => {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) {
        throw new Error(`--${key} wants an integer, got ${value}`);
      }
      return n;
    };
    if (key === "levels") options.levels = value!.split(",").map((v) => Number(v));
    else if (key === "rounds") options.rounds = int();
    else if (key === "burst") options.burst = int();
    else if (key === "gc") options.gc = int();
    else if (key === "restore-gc") options.restoreGc = int();
    else if (key === "readers") options.readers = int();
    else if (key === "conmon") options.conmon = int();
    else if (key === "out") options.out = value!;
    else throw new Error(`unknown flag --${key}`);
  }
  if (options.levels.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new Error(`--levels wants positive integers, got ${options.levels}`);
  }
  return options;
}

/** Things to undo whatever happens (daemons, writers, temp dirs), newest first. */
const undo: (() => Promise<unknown>)[] = [];

async function runUndo(): Promise<void> {
  while (undo.length > 0) {
    try {
      await undo.pop()!();
    } catch (e) {
      progress(`cleanup: ${e instanceof Error ? e.message : e}`);
    }
  }
}

async function runLevel(
  n: number,
  options: Options,
  withRestore: boolean,
): Promise<{ level: LevelResult; restore: RestoreResult | null }> {
  const dir = await Deno.makeTempDir({ prefix: `reaperd-bench-${n}-` });
  undo.push(() => Deno.remove(dir, { recursive: true }));
  let daemon = await BenchDaemon.start({
    dir,
    runtimes: { fake: { path: "/bin/true" } },
    // Only the stuck entries of the restore phase ever fail: let them wait an hour.
    gc: { backoffBaseMs: 3_600_000, backoffMaxMs: 3_600_000 },
  });
  const readyEmptyMs = daemon.startToReadyMs;
  let stopDaemon = () => daemon.stop();
  let writer: WriterProcess | null = null;
  // The daemon goes first: closing the writer before would hang up every FIFO it watches.
  undo.push(async () => {
    await stopDaemon();
    await writer?.close();
  });
  const feed = await EventFeed.start(daemon.socket);
  undo.push(() => feed.close());
  writer = await WriterProcess.start();
  const ghost = ghostIdentity();

  await sleep(2000);
  const cold = daemon.memory();
  // Warm up: a few containers through the whole path (register, exit, clean up), so that the
  // code those paths run is paged in before "RSS at 0 monitored" is read.
  progress(`N=${n}: daemon ready in ${fmt(daemon.startToReadyMs, 0)} ms; warming up`);
  await measureExitLatency(daemon, feed, writer, ghost, `warm${n}`, WARM_UP);
  const idle = await daemon.settledMemory();
  const idleFds = daemon.fds();
  progress(`N=${n}: registering ${n} containers`);
  const ids = Array.from({ length: n }, (_, i) => `c-${i}`);
  const registering = nowMs();
  await registerContainers(daemon, writer, ids, ghost);
  const registerPerSecond = n / ((nowMs() - registering) / 1000);
  const atN = await daemon.settledMemory();
  const fdsAtN = daemon.fds();
  const health = await daemon.call("GET", "/v1/health") as { monitored: number };
  if (health.monitored !== n) throw new Error(`daemon monitors ${health.monitored}, not ${n}`);

  progress(`N=${n}: exit latency, ${options.rounds} exits one at a time`);
  const latency = await measureExitLatency(daemon, feed, writer, ghost, String(n), options.rounds);
  progress(`N=${n}: burst of ${options.burst} exits`);
  let cpu = cpuMs(daemon.pid);
  const burst = await measureBurst(daemon, feed, writer, ghost, String(n), options.burst);
  const burstCpuPerExitMs = (cpuMs(daemon.pid) - cpu) / options.burst;
  progress(`N=${n}: GC of ${options.gc} entries`);
  cpu = cpuMs(daemon.pid);
  const gc = await measureGc(daemon, feed, ghost, String(n), options.gc);
  const gcCpuPerEntryMs = (cpuMs(daemon.pid) - cpu) / options.gc;

  let restore: RestoreResult | null = null;
  if (withRestore) {
    progress(`N=${n}: restore with ${n} running and ${options.restoreGc} GC entries`);
    await feed.close();
    const restoreFeed = await EventFeed.start(daemon.socket, feed.lastSeq);
    try {
      const outcome = await measureRestore(daemon, restoreFeed, ghost, options.restoreGc);
      restore = outcome.result;
      daemon = outcome.daemon;
    } finally {
      await restoreFeed.close();
    }
    stopDaemon = () => daemon.stop();
  }

  return {
    level: {
      n,
      readyEmptyMs,
      cold,
      idle,
      idleFds,
      atN,
      fdsAtN,
      registerPerSecond,
      latency,
      burst,
      burstCpuPerExitMs,
      gc,
      gcCpuPerEntryMs,
    },
    restore,
  };
}

// ------------------------------------------------------------------------------- the report

const MiB = 1024;

function perContainerBytes(l: LevelResult, f: (m: Memory) => number): number {
  return ((f(l.atN) - f(l.idle)) * 1024) / l.n;
}

interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

function verdicts(
  levels: LevelResult[],
  restore: RestoreResult | null,
  ceilings: Ceilings,
): Verdict[] {
  const out: Verdict[] = [];
  const top = levels.reduce((a, b) => (b.n > a.n ? b : a));
  const low = levels.reduce((a, b) => (b.n < a.n ? b : a));
  const nTop = top.n.toLocaleString("en-US");
  out.push({
    target: `exit latency p99 ≤ 20 ms at N=${nTop} (write → recorded, on the stream)`,
    measured: `${fmt(top.latency.toRecorded.p99)} ms`,
    met: top.latency.toRecorded.p99 <= 20,
  });
  const growth = top.latency.toRecorded.p50 - low.latency.toRecorded.p50;
  out.push({
    target: `no growth with N (p50 at N=${nTop} within 2 ms of N=${low.n})`,
    measured: `${fmt(low.latency.toRecorded.p50)} → ${fmt(top.latency.toRecorded.p50)} ms`,
    met: levels.length > 1 && growth <= 2,
  });
  for (const l of levels) {
    out.push({
      target: `burst of ${l.burst.size.toLocaleString("en-US")} exits all recorded ≤ 1 s (N=${
        l.n.toLocaleString("en-US")
      })`,
      measured: `${fmt(l.burst.allRecordedMs, 0)} ms`,
      met: l.burst.allRecordedMs <= 1000,
    });
  }
  const perContainer = perContainerBytes(top, (m) => m.rssKiB);
  out.push({
    target: `≤ 2 KiB daemon RSS per monitored container at N=${nTop}`,
    measured: `${fmt(perContainer / 1024, 2)} KiB (${
      fmt((top.atN.rssKiB - top.idle.rssKiB) / MiB)
    } MiB over idle)`,
    met: perContainer <= 2048,
  });
  const worstGc = Math.min(...levels.map((l) => l.gc.perSecond));
  out.push({
    target: "GC ≥ 200 entries/s with an instant runtime",
    measured: `${fmt(worstGc, 0)}–${
      fmt(Math.max(...levels.map((l) => l.gc.perSecond)), 0)
    } /s (this machine's ceiling: ${fmt(ceilings.spawnsPerSecond8 / 2, 0)} /s)`,
    met: worstGc >= 200,
  });
  if (restore !== null) {
    out.push({
      target: `READY ≤ 5 s with ${restore.running.toLocaleString("en-US")} running + ${
        restore.gcEntries.toLocaleString("en-US")
      } GC entries`,
      measured: `${fmt(restore.readyMs / 1000, 2)} s`,
      met: restore.readyMs <= 5000,
    });
  }
  return out;
}

function levelTable(levels: LevelResult[]): string {
  const head = ["measure", ...levels.map((l) => `N = ${l.n.toLocaleString("en-US")}`)];
  const row = (name: string, f: (l: LevelResult) => string) => [name, ...levels.map(f)];
  const b = levels[0]?.burst.size.toLocaleString("en-US") ?? "";
  const g = levels[0]?.gc.count.toLocaleString("en-US") ?? "";
  return markdownTable(head, [
    row(
      "exit: write → recorded, on the stream (ms) p50 / p99 / max",
      (l) => fmtSummary(l.latency.toRecorded),
    ),
    row(
      "exit: write → decoded by the epoll loop (ms) p50 / p99 / max",
      (l) => fmtSummary(l.latency.toDecoded),
    ),
    row(
      "exit: decoded → committed, daemon histogram (ms) p50 ≤ / p99 ≤ / mean",
      (l) =>
        `${fmt(l.latency.daemon.p50)} / ${fmt(l.latency.daemon.p99)} / ${
          fmt(l.latency.daemon.mean)
        }`,
    ),
    row(
      "exit: write → cleaned up (`stopped`) (ms) p50 / p99 / max",
      (l) => fmtSummary(l.latency.toCleaned),
    ),
    row(`burst of ${b}: first write → all recorded (ms)`, (l) => fmt(l.burst.allRecordedMs, 0)),
    row(
      `burst of ${b}: each exit, write → recorded (ms) p50 / p99 / max`,
      (l) => fmtSummary(l.burst.perExit, 0),
    ),
    row(`burst of ${b}: first write → all cleaned up (ms)`, (l) => fmt(l.burst.allCleanedMs, 0)),
    row("burst: daemon CPU per exit, cleanup included (ms)", (l) => fmt(l.burstCpuPerExitMs, 2)),
    row("daemon RSS just started (MiB)", (l) => fmt(l.cold.rssKiB / MiB)),
    row("daemon RSS at 0 monitored, warmed up, settled (MiB)", (l) => fmt(l.idle.rssKiB / MiB)),
    row("daemon RSS at N, settled (MiB)", (l) => fmt(l.atN.rssKiB / MiB)),
    row(
      "RSS per container, (RSS at N − idle) / N (KiB)",
      (l) => fmt(perContainerBytes(l, (m) => m.rssKiB) / 1024, 2),
    ),
    row("RSS per container added since the previous level (KiB)", (l) => {
      const i = levels.indexOf(l);
      if (i === 0) return "–";
      const prev = levels[i - 1]!;
      return fmt(((l.atN.rssKiB - prev.atN.rssKiB) * 1024) / (l.n - prev.n) / 1024, 2);
    }),
    row(
      "anonymous RSS per container (KiB)",
      (l) => fmt(perContainerBytes(l, (m) => m.anonKiB) / 1024, 2),
    ),
    row("descriptors idle → at N", (l) => `${l.idleFds} → ${l.fdsAtN}`),
    row("descriptors per container", (l) => fmt((l.fdsAtN - l.idleFds) / l.n, 2)),
    row("registration (create-fifo + open + monitor) per s", (l) => fmt(l.registerPerSecond, 0)),
    row(`GC of ${g} entries, instant runtime (entries/s)`, (l) => fmt(l.gc.perSecond, 0)),
    row("GC: daemon CPU per entry (ms)", (l) => fmt(l.gcCpuPerEntryMs, 2)),
    row("start → READY=1, empty store (ms)", (l) => fmt(l.readyEmptyMs, 0)),
  ]);
}

function restoreTable(r: RestoreResult): string {
  return markdownTable(["restore", "value"], [
    ["running records (monitored before the restart)", r.running.toLocaleString("en-US")],
    ["GC entries", r.gcEntries.toLocaleString("en-US")],
    ["records in the store, every state", r.records.toLocaleString("en-US")],
    ["SIGTERM → old daemon gone (ms)", fmt(r.stopMs, 0)],
    ["spawn → READY=1 (ms)", fmt(r.readyMs, 0)],
    ["spawn → first healthy answer on the socket (ms)", fmt(r.healthyMs, 0)],
    [
      "monitored / in GC after the restart",
      `${r.monitoredAfter.toLocaleString("en-US")} / ${r.gcAfter.toLocaleString("en-US")}`,
    ],
    ["RSS right after READY (MiB)", fmt(r.rssKiB / MiB)],
  ]);
}

async function runReadLoad(readers: number): Promise<ReadLoadResult> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bench-reads-" });
  undo.push(() => Deno.remove(dir, { recursive: true }));
  const daemon = await BenchDaemon.start({
    dir,
    runtimes: { fake: { path: "/bin/true" } },
    gc: { backoffBaseMs: 3_600_000, backoffMaxMs: 3_600_000 },
  });
  const writer = await WriterProcess.start();
  undo.push(async () => {
    await daemon.stop();
    await writer.close();
  });
  const feed = await EventFeed.start(daemon.socket);
  undo.push(() => feed.close());
  return await measureReadLoad(daemon, feed, writer, ghostIdentity(), {
    readers,
    containers: 200,
    exits: 200,
    label: "reads",
  });
}

function readLoadTable(r: ReadLoadResult): string {
  return markdownTable(["exit recording under read load", "value"], [
    [
      `${r.readers} keep-alive clients (own process) calling ps and inspect, ${r.containers} containers`,
      `${fmt(r.readsPerSecond, 0)} reads/s answered, ${r.readErrors} failed`,
    ],
    [
      `${r.exits} exits 20 ms apart: write → recorded, on the stream (ms) p50 / p99 / max`,
      fmtSummary(r.toRecorded),
    ],
    ["same exits: write → decoded by the epoll loop (ms) p50 / p99 / max", fmtSummary(r.toDecoded)],
    [
      "same exits: decoded → committed, daemon histogram (ms) p50 ≤ / p99 ≤",
      `${fmt(r.daemon.p50)} / ${fmt(r.daemon.p99)}`,
    ],
    [
      "daemon RSS before the readers → highest under them (MiB)",
      `${fmt(r.rssBeforeMiB)} → ${fmt(r.rssPeakMiB)}`,
    ],
  ]);
}

function conmonTable(c: ConmonResult, top: LevelResult | undefined): string {
  if (!c.ok) return `conmon baseline not measured: ${c.reason}`;
  const rows = [
    [
      `conmon (${c.version}), one per container, ${c.count} containers: RSS`,
      `${fmt(c.mean.rssKiB)} KiB`,
    ],
    ["conmon: PSS (shared pages split between the conmons)", `${fmt(c.mean.pssKiB)} KiB`],
    ["conmon: anonymous RSS", `${fmt(c.mean.anonKiB)} KiB`],
    ["conmon: descriptors", fmt(c.fds, 1)],
  ];
  if (top !== undefined) {
    const rss = perContainerBytes(top, (m) => m.rssKiB) / 1024;
    rows.push(
      [`reaperd at N=${top.n.toLocaleString("en-US")}: RSS per container`, `${fmt(rss, 2)} KiB`],
      ["conmon RSS / reaperd RSS per container", rss > 0 ? `${fmt(c.mean.rssKiB / rss, 0)}×` : "–"],
      [
        `reaperd whole daemon at N=${top.n.toLocaleString("en-US")} vs ${
          top.n.toLocaleString("en-US")
        } conmons (RSS)`,
        `${fmt(top.atN.rssKiB / MiB)} MiB vs ${fmt((c.mean.rssKiB * top.n) / MiB)} MiB`,
      ],
    );
  }
  return markdownTable(["peer baseline", "value"], rows);
}

function ceilingTable(c: Ceilings): string {
  return markdownTable(["floor on this machine (no daemon)", "value"], [
    [
      "one KV transition (getMany + atomic check/set/commit, fsync'ed), spaced (ms) p50 / p99 / max",
      fmtSummary(c.kvTransition, 2),
    ],
    ["KV transitions back to back, per s", fmt(c.kvTransitionsPerSecond, 0)],
    ["`/bin/true` run by reaperd's runner, one at a time, per s", fmt(c.spawnsPerSecond, 0)],
    ["`/bin/true` run by reaperd's runner, 8 in flight, per s", fmt(c.spawnsPerSecond8, 0)],
    [
      "GC ceiling: half the runner's rate at 8 in flight (two runtime calls per entry), per s",
      fmt(c.spawnsPerSecond8 / 2, 0),
    ],
    ["`/bin/true` run by Deno.Command, 8 in flight, per s", fmt(c.denoCommandPerSecond8, 0)],
  ]);
}

function machineTable(m: Machine, options: Options, wallS: number, load: string[]): string {
  return markdownTable(["machine", ""], [
    ["date", m.date],
    ["CPU", m.cpu],
    ["cores", String(m.cores)],
    ["memory", `${m.memoryGiB} GiB`],
    ["kernel", m.kernel],
    ["deno", `${m.deno} (V8 ${m.v8})`],
    ["store on", m.tmpFs],
    ["reaperd commit", m.commit],
    ["run", `deno task bench ${Deno.args.join(" ")}`.trim()],
    [
      "levels, samples",
      `N = ${
        options.levels.join(", ")
      }; ${options.rounds} single exits, burst ${options.burst}, GC ${options.gc}, restore GC ${options.restoreGc}, conmon ${options.conmon}`,
    ],
    ["whole run", `${fmt(wallS, 0)} s`],
    ["load average (1/5/15 min) at start, end", load.join("; ")],
  ]);
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const started = nowMs();
  const load = [loadAverage()];
  const machine = await describeMachine();
  progress("floors: KV commit and process start on this machine");
  const scratch = await Deno.makeTempDir({ prefix: "reaperd-bench-floor-" });
  let ceilings: Ceilings;
  try {
    ceilings = await measureCeilings(scratch);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  // One throw-away start, so that fetching npm packages and transpiling on a fresh machine is
  // not counted as the first level's start-up.
  const warmDir = await Deno.makeTempDir({ prefix: "reaperd-bench-warm-" });
  try {
    const warm = await BenchDaemon.start({
      dir: warmDir,
      runtimes: { fake: { path: "/bin/true" } },
    });
    await warm.stop();
  } finally {
    await Deno.remove(warmDir, { recursive: true });
  }
  const levels: LevelResult[] = [];
  let restore: RestoreResult | null = null;
  const top = Math.max(...options.levels);
  for (const n of options.levels) {
    const { level, restore: r } = await runLevel(n, options, n === top && options.restoreGc > 0);
    levels.push(level);
    if (r !== null) restore = r;
    await runUndo();
  }
  let readLoad: ReadLoadResult | null = null;
  if (options.readers > 0) {
    progress(`read load: ${options.readers} keep-alive readers, 200 containers, 200 exits`);
    readLoad = await runReadLoad(options.readers);
    await runUndo();
  }
  let conmon: ConmonResult = { ok: false, reason: "skipped (--conmon=0)" };
  if (options.conmon > 0) {
    progress(`conmon baseline: ${options.conmon} runc containers`);
    conmon = await measureConmon(options.conmon);
  }
  const wallS = (nowMs() - started) / 1000;
  load.push(loadAverage());
  const topLevel = levels.find((l) => l.n === top);
  const judged = verdicts(levels, restore, ceilings);
  if (readLoad !== null) {
    judged.push({
      target: `exit recorded ≤ 100 ms p99 under ${readLoad.readers} keep-alive ps/inspect readers`,
      measured: `${fmt(readLoad.toRecorded.p99)} ms`,
      met: readLoad.toRecorded.p99 <= 100,
    });
  }
  const report = [
    markdownTable(
      ["target", "measured", "met"],
      judged.map((v) => [v.target, v.measured, v.met ? "yes" : "**no**"]),
    ),
    "",
    levelTable(levels),
    "",
    restore === null ? "restore not measured" : restoreTable(restore),
    "",
    readLoad === null ? "read load not measured" : readLoadTable(readLoad),
    "",
    conmonTable(conmon, topLevel),
    "",
    ceilingTable(ceilings),
    "",
    machineTable(machine, options, wallS, load),
  ].join("\n");
  print(report);
  if (options.out !== "") {
    let notes = "";
    try {
      notes = await Deno.readTextFile(new URL("./NOTES.md", import.meta.url));
    } catch {
      // No hand-written notes.
    }
    await Deno.writeTextFile(
      options.out,
      [
        "# reaperd benchmark results",
        "",
        // Wrapped as `deno fmt` wraps it, so that the file passes `deno fmt --check`.
        "Written by `deno task bench` (bench/main.ts) on the machine below; every figure comes from that one",
        "run. The notes after the tables (bench/NOTES.md) say what each figure covers and what limits it.",
        "",
        report,
        "",
        notes,
      ].join("\n"),
    );
    progress(`wrote ${options.out}`);
  }
  return 0;
}

if (import.meta.main) {
  const stop = () => {
    progress("interrupted: cleaning up");
    runUndo().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    progress(`failed: ${e instanceof Error ? e.stack ?? e.message : e}`);
  } finally {
    await runUndo();
  }
  Deno.exit(code);
}
