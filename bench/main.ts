/**
 * `deno task bench`: reaperd's benchmarks against the real daemon process, driven from this
 * separate process through the socket API, with the floors of the machine measured in the same
 * run. Prints the report and writes it, with the machine, to `bench/RESULTS.md` (with
 * `bench/NOTES.md`, the hand-written analysis, appended).
 *
 * 1. Floors: a C program (built with gcc now) doing an exit's bare work (epoll, read, an
 *    fsync'd record, a line to a reader) at the same pace as the daemon's exits; the process
 *    spawn ceiling in C and through reaperd's runner; one Deno KV transition.
 * 2. At N = `--containers` (5,000): a fresh daemon; containers registered by one keep-alive
 *    client (create-fifo → the writer opens the write end → monitor); RSS settled at
 *    `--step` (500) and at N, for the slope; `--exits` exits one every `--gap` ms; all N
 *    exiting at once and their cleanups; `--gc` entries through GC.
 * 3. At N = `--top` (10,000): a fresh daemon; the same paced exits; the restore with
 *    `--restore-gc` stuck GC entries.
 * 4. Exit recording while `--readers` (500) keep-alive clients call `ps` and `inspect`
 *    (read_load.ts).
 * 5. conmon supervising `--conmon` runc containers, the peer baseline.
 *
 * `--quick` runs a small version of all this in about two minutes and writes nothing; flags
 * after it override it. `--out=` writes nothing.
 *
 * @module
 */

import { nowMs } from "./_clock.ts";
import { BenchDaemon, cpuMs, type Memory } from "./_daemon.ts";
import { EventFeed } from "./_events.ts";
import {
  type GhostIdentity,
  ghostIdentity,
  IN_FLIGHT,
  makeRuntimeRoots,
  registerContainers,
  type RegisterTimings,
} from "./_fleet.ts";
import { describeMachine, loadAverage, type Machine } from "./_machine.ts";
import { fmt, fmtSummary, markdownTable, sleep, summarize, type Summary } from "./_stats.ts";
import { WriterProcess } from "./_writer.ts";
import { readProcStat } from "../src/sys/proc.ts";
import { type BurstResult, measureBurst } from "./burst.ts";
import { type Ceilings, measureCeilings } from "./ceilings.ts";
import { type KvMemory, measureKvMemory } from "./kv_memory.ts";
import { type ConmonResult, measureConmon } from "./conmon.ts";
import { buildFloor, type CFloors, measureExitFloor, measureSpawnFloor } from "./floor.ts";
import { type GcResult, measureGc } from "./gc.ts";
import { type LatencyResult, measureExitLatency } from "./latency.ts";
import { measureReadLoad, type ReadLoadResult } from "./read_load.ts";
import { measureRestore, type RestoreResult } from "./restore.ts";

interface Options {
  containers: number;
  step: number;
  top: number;
  exits: number;
  gap: number;
  gc: number;
  restoreGc: number;
  readers: number;
  conmon: number;
  settleMs: number;
  out: string;
}

/** Registration by one keep-alive client, one request at a time. */
interface Registration {
  perSecond: number;
  createFifo: Summary;
  monitor: Summary;
}

/** Registration with one call per container (`monitor` creating the FIFO), one client. */
interface OneCallRegistration {
  count: number;
  perSecond: number;
  monitor: Summary;
}

/** What the main level (N = `--containers`) measured. */
interface MainResult {
  n: number;
  step: number;
  readyEmptyMs: number;
  cold: Memory;
  idle: Memory;
  atStep: Memory;
  atN: Memory;
  idleFds: number;
  fdsAtN: number;
  registration: Registration;
  oneCall: OneCallRegistration;
  /** GET /v1/health by one keep-alive client, one at a time, per second. */
  healthPerSecond: number;
  latency: LatencyResult;
  burst: BurstResult;
  burstCpuPerExitMs: number;
  gc: GcResult;
  gcCpuPerEntryMs: number;
}

/** What the top level (N = `--top`) measured. */
interface TopResult {
  n: number;
  idle: Memory;
  atN: Memory;
  /** Registrations per second with IN_FLIGHT requests in flight. */
  registerPerSecond: number;
  latency: LatencyResult;
  restore: RestoreResult | null;
}

/**
 * A row measured by a benchmark of its own (read load: exits recorded while hundreds of
 * keep-alive clients read): it adds its result here.
 */
interface ExtraRow {
  measure: string;
  measured: string;
  goal: string;
  met: boolean | null;
}

const encoder = new TextEncoder();
/** Containers run through the whole exit path before the idle RSS is read. */
const WARM_UP = 20;
/**
 * Where state roots go: a tmpfs, as `/var/run/isulad` is on a host (under `/run`); the store
 * stays in the temp dir, on disk, as `/var/lib/reaperd` does.
 */
const STATE_FS = tmpfsDir();

function tmpfsDir(): string | undefined {
  for (const dir of ["/run", "/dev/shm"]) {
    try {
      const mounts = Deno.readTextFileSync("/proc/self/mounts").split("\n");
      if (mounts.some((l) => l.split(" ")[1] === dir && l.split(" ")[2] === "tmpfs")) return dir;
    } catch {
      // No /proc: the temp dir then.
    }
  }
  return undefined;
}

/** Requests of the socket API's round trip floor. */
const HEALTH_ROUNDS = 500;
const MiB = 1024;

function print(text = ""): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

function progress(text: string): void {
  Deno.stderr.writeSync(
    encoder.encode(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`),
  );
}

const FULL: Options = {
  containers: 5_000,
  step: 500,
  top: 10_000,
  exits: 200,
  gap: 20,
  gc: 1_000,
  restoreGc: 10_000,
  readers: 500,
  conmon: 20,
  settleMs: 20_000,
  out: new URL("./RESULTS.md", import.meta.url).pathname,
};

const QUICK: Partial<Options> = {
  containers: 1_000,
  step: 100,
  top: 0,
  exits: 50,
  gc: 200,
  restoreGc: 0,
  readers: 100,
  conmon: 0,
  settleMs: 12_000,
  out: "",
};

function parseOptions(args: string[]): Options {
  const options: Options = { ...FULL, ...(args.includes("--quick") ? QUICK : {}) };
  const keys: Record<string, keyof Options> = {
    containers: "containers",
    step: "step",
    top: "top",
    exits: "exits",
    gap: "gap",
    gc: "gc",
    "restore-gc": "restoreGc",
    readers: "readers",
    conmon: "conmon",
    "settle-ms": "settleMs",
  };
  for (const arg of args) {
    if (arg === "--quick") continue;
    const m = arg.match(/^--([a-z-]+)=(.*)$/);
    if (m === null) throw new Error(`unknown argument ${arg} (flags look like --exits=200)`);
    const [, key, value] = m;
    if (key === "out") {
      options.out = value!;
      continue;
    }
    const name = keys[key!];
    if (name === undefined) throw new Error(`unknown flag --${key}`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${key} wants an integer: ${value}`);
    (options[name] as number) = n;
  }
  if (options.containers < 1 || options.step < 1 || options.step >= options.containers) {
    throw new Error("wants 0 < --step < --containers");
  }
  if (options.exits < 1 || options.exits > options.containers) {
    throw new Error("wants 0 < --exits <= --containers");
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

/** A fresh daemon on a temp dir, its event feed and a writer, all undone by runUndo. */
interface Rig {
  daemon: BenchDaemon;
  feed: EventFeed;
  writer: WriterProcess;
  ghost: GhostIdentity;
  /** Replaces the daemon (after a restart) for the final stop. */
  swap(daemon: BenchDaemon): void;
}

async function startRig(label: string): Promise<Rig> {
  const dir = await Deno.makeTempDir({ prefix: `reaperd-bench-${label}-` });
  undo.push(() => Deno.remove(dir, { recursive: true }));
  const stateDirs = await Deno.makeTempDir({
    ...(STATE_FS === undefined ? {} : { dir: STATE_FS }),
    prefix: `reaperd-bench-${label}-`,
  });
  undo.push(() => Deno.remove(stateDirs, { recursive: true }));
  let daemon = await BenchDaemon.start({
    dir,
    stateRoot: `${stateDirs}/state`,
    runtimes: { fake: { path: "/bin/true" } },
    // Only the stuck entries of the restore phase ever fail: let them wait an hour.
    gc: { backoffBaseMs: 3_600_000, backoffMaxMs: 3_600_000 },
  });
  let writer: WriterProcess | null = null;
  // The daemon goes first: closing the writer before would hang up every FIFO it watches.
  undo.push(async () => {
    await daemon.stop();
    await writer?.close();
  });
  const feed = await EventFeed.start(daemon.socket);
  undo.push(() => feed.close());
  writer = await WriterProcess.start();
  return { daemon, feed, writer, ghost: ghostIdentity(), swap: (d) => daemon = d };
}

/** Takes WARM_UP containers through register → exit → cleanup, so their code is paged in. */
async function warmUp(rig: Rig, label: string): Promise<void> {
  const ids = Array.from({ length: WARM_UP }, (_, i) => `warm-${label}-${i}`);
  const index = await registerContainers(rig.daemon, rig.writer, ids, rig.ghost);
  await measureExitLatency(rig.daemon, rig.feed, rig.writer, index, 50);
}

async function registerOneClient(
  rig: Rig,
  ids: readonly string[],
  timings: RegisterTimings,
  oneCall?: GhostIdentity,
): Promise<{ index: Map<string, number>; ms: number }> {
  // The engine's own work (its dirs, as runc's --root) is not reaperd's: made before the clock.
  makeRuntimeRoots(rig.daemon, ids);
  const t = nowMs();
  const index = await registerContainers(rig.daemon, rig.writer, ids, rig.ghost, {
    inFlight: 1,
    timings,
    makeRoots: false,
    ...(oneCall === undefined ? {} : { oneCall }),
  });
  return { index, ms: nowMs() - t };
}

/**
 * Registers `count` containers with one call each (one keep-alive client, nobody following the
 * events), then lets them all exit and be cleaned, so that the main level starts from none.
 * Resolves to the figures and the event feed, reopened.
 */
async function measureOneCall(
  rig: Rig,
  feed: EventFeed,
  count: number,
): Promise<{ result: OneCallRegistration; feed: EventFeed }> {
  progress(`registering ${count} with one call each (monitor --create-fifo), one client`);
  // Their shim: alive until the first cleanup SIGKILLs it.
  const process = new Deno.Command("sleep", { args: ["100000"], stdin: "null" }).spawn();
  undo.push(async () => {
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone: the first cleanup killed it.
    }
    await process.status;
  });
  const stat = readProcStat(process.pid);
  if (stat === null) throw new Error("the shim is gone at once");
  const live = { pid: process.pid, startTime: stat.startTime };
  const since = feed.lastSeq;
  await feed.close();
  // The first few are not timed: the warm-up took the two-call way, not this one.
  const warm = Array.from({ length: WARM_UP }, (_, i) => `one-warm-${i}`);
  const warmed = await registerOneClient(rig, warm, { createFifoMs: [], monitorMs: [] }, live);
  const ids = Array.from({ length: count }, (_, i) => `one-${i}`);
  const timings: RegisterTimings = { createFifoMs: [], monitorMs: [] };
  const { index, ms } = await registerOneClient(rig, ids, timings, live);
  const following = await EventFeed.start(rig.daemon.socket, since);
  undo.push(() => following.close());
  await measureBurst(following, rig.writer, new Map([...warmed.index, ...index]));
  return {
    result: { count, perSecond: count / (ms / 1000), monitor: summarize(timings.monitorMs) },
    feed: following,
  };
}

async function runMain(options: Options): Promise<MainResult> {
  const n = options.containers;
  const rig = await startRig(String(n));
  const { daemon, writer } = rig;
  let feed = rig.feed;
  const readyEmptyMs = daemon.startToReadyMs;
  await sleep(2000);
  const cold = daemon.memory();
  progress(`N=${n}: daemon ready in ${fmt(readyEmptyMs, 0)} ms; warming up`);
  await warmUp(rig, "main");
  const settle = () => daemon.settledMemory(options.settleMs);
  const idle = await settle();
  const idleFds = daemon.fds();
  const t = nowMs();
  for (let i = 0; i < HEALTH_ROUNDS; i++) await daemon.call("GET", "/v1/health");
  const healthPerSecond = HEALTH_ROUNDS / ((nowMs() - t) / 1000);

  progress(`N=${n}: registering ${options.step}, then ${n - options.step}, one client`);
  // Nobody follows the events meanwhile: the client registering is alone on the socket, and
  // this process does nothing else.
  await feed.close();
  const ids = Array.from({ length: n }, (_, i) => `c-${i}`);
  const timings: RegisterTimings = { createFifoMs: [], monitorMs: [] };
  const first = await registerOneClient(rig, ids.slice(0, options.step), timings);
  const atStep = await settle();
  const rest = await registerOneClient(rig, ids.slice(options.step), timings);
  const registration: Registration = {
    perSecond: n / ((first.ms + rest.ms) / 1000),
    createFifo: summarize(timings.createFifoMs),
    monitor: summarize(timings.monitorMs),
  };
  const atN = await settle();
  const fdsAtN = daemon.fds();
  const following = await EventFeed.start(daemon.socket, feed.lastSeq);
  undo.push(() => following.close());
  feed = following;
  const index = new Map([...first.index, ...rest.index]);
  const health = await daemon.call("GET", "/v1/health") as { monitored: number };
  if (health.monitored !== n) throw new Error(`daemon monitors ${health.monitored}, not ${n}`);

  progress(`N=${n}: ${options.exits} exits, one every ${options.gap} ms`);
  const exiting = new Map(ids.slice(0, options.exits).map((id) => [id, index.get(id)!]));
  const latency = await measureExitLatency(daemon, feed, writer, exiting, options.gap);
  // Back to N monitored before they all exit at once.
  const refill = Array.from({ length: options.exits }, (_, i) => `refill-${i}`);
  const remaining = new Map(ids.slice(options.exits).map((id) => [id, index.get(id)!]));
  for (const [id, i] of await registerContainers(daemon, writer, refill, rig.ghost)) {
    remaining.set(id, i);
  }
  await sleep(1000);

  progress(`N=${n}: all ${remaining.size} exit at once`);
  let cpu = cpuMs(daemon.pid);
  const burst = await measureBurst(feed, writer, remaining);
  const burstCpuPerExitMs = (cpuMs(daemon.pid) - cpu) / burst.size;
  progress(`N=${n}: GC of ${options.gc} entries`);
  cpu = cpuMs(daemon.pid);
  const gc = await measureGc(daemon, feed, rig.ghost, String(n), options.gc);
  const gcCpuPerEntryMs = (cpuMs(daemon.pid) - cpu) / Math.max(1, options.gc);
  // Last: a burst of one-call registrations leaves the heap grown for a while, and the memory
  // figures above must not read that as the cost of the containers registered after it.
  const oneCall = await measureOneCall(rig, feed, options.step);
  return {
    n,
    step: options.step,
    readyEmptyMs,
    cold,
    idle,
    atStep,
    atN,
    idleFds,
    fdsAtN,
    registration,
    oneCall: oneCall.result,
    healthPerSecond,
    latency,
    burst,
    burstCpuPerExitMs,
    gc,
    gcCpuPerEntryMs,
  };
}

async function runTop(options: Options): Promise<TopResult> {
  const n = options.top;
  const rig = await startRig(String(n));
  const { daemon, feed, writer } = rig;
  progress(`N=${n}: warming up`);
  await warmUp(rig, "top");
  const idle = await daemon.settledMemory(options.settleMs);
  progress(`N=${n}: registering ${n}`);
  const ids = Array.from({ length: n }, (_, i) => `t-${i}`);
  makeRuntimeRoots(daemon, ids);
  const t = nowMs();
  await registerContainers(daemon, writer, ids, rig.ghost, { makeRoots: false });
  const registerPerSecond = n / ((nowMs() - t) / 1000);
  const atN = await daemon.settledMemory(options.settleMs);
  progress(`N=${n}: ${options.exits} exits, one every ${options.gap} ms`);
  // The exits come out of the N, so N + exits are registered to keep N monitored meanwhile.
  const extra = Array.from({ length: options.exits }, (_, i) => `x-${i}`);
  const exiting = await registerContainers(daemon, writer, extra, rig.ghost);
  await sleep(1000);
  const latency = await measureExitLatency(daemon, feed, writer, exiting, options.gap);
  let restore: RestoreResult | null = null;
  if (options.restoreGc > 0) {
    progress(`N=${n}: restore with ${n} running and ${options.restoreGc} GC entries`);
    // The feed already open counts the GC attempts: near 10,000 containers a daemon under a
    // 20,000 descriptor limit takes one new connection at a time (2 descriptors are kept per
    // container), and this benchmark's own client holds it.
    const outcome = await measureRestore(daemon, feed, rig.ghost, options.restoreGc);
    restore = outcome.result;
    rig.swap(outcome.daemon);
  }
  return { n, idle, atN, registerPerSecond, latency, restore };
}

/** The C floors, with a writer process of their own. */
async function measureCFloors(options: Options): Promise<CFloors> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bench-cfloor-" });
  const writer = await WriterProcess.start();
  try {
    const binary = await buildFloor(dir);
    const fifos = `${dir}/exit`;
    await Deno.mkdir(fifos);
    return {
      exit: await measureExitFloor(binary, fifos, writer, options.exits, options.gap),
      spawnPerSecond: await measureSpawnFloor(binary, 300, 1),
      spawnPerSecond8: await measureSpawnFloor(binary, 400, 8),
    };
  } finally {
    await writer.close();
    await Deno.remove(dir, { recursive: true });
  }
}

// ------------------------------------------------------------------------------- the report

const count = (n: number) => n.toLocaleString("en-US");

function perContainerKiB(atN: Memory, idle: Memory, n: number): number {
  return (atN.rssKiB - idle.rssKiB) / n;
}

function slopeKiB(m: MainResult): number {
  return (m.atN.rssKiB - m.atStep.rssKiB) / (m.n - m.step);
}

function goalsTable(
  m: MainResult,
  top: TopResult | null,
  c: CFloors,
  k: Ceilings,
  kv: KvMemory,
  extra: ExtraRow[],
): string {
  const yes = (ok: boolean | null) => ok === null ? "–" : ok ? "yes" : "**no**";
  const floor = c.exit.p50;
  const rows: string[][] = [];
  const latencyRows = (n: number, l: LatencyResult) => {
    rows.push([
      `exit write → exit event on \`/v1/events?follow=1\`, p50, N=${count(n)}`,
      `${fmt(l.toRecorded.p50, 2)} ms (${fmt(l.toRecorded.p50 / floor, 1)}× the floor)`,
      `${fmt(floor, 2)} ms (C: epoll + read + fsync'd record)`,
      "≤ 2× the floor",
      yes(l.toRecorded.p50 <= 2 * floor),
    ]);
    rows.push([
      `same, p99, N=${count(n)}`,
      `${fmt(l.toRecorded.p99, 1)} ms (max ${fmt(l.toRecorded.max, 1)})`,
      `${fmt(c.exit.p99, 2)} ms`,
      "≤ 10 ms at 10,000",
      yes(n >= 10_000 ? l.toRecorded.p99 <= 10 : null),
    ]);
  };
  latencyRows(m.n, m.latency);
  if (top !== null) latencyRows(top.n, top.latency);
  rows.push([
    "registration (create-fifo + monitor), one keep-alive client",
    `${fmt(m.registration.perSecond, 0)} /s (median create-fifo ${
      fmt(m.registration.createFifo.p50, 2)
    } ms, monitor ${fmt(m.registration.monitor.p50, 2)} ms)`,
    `${fmt(k.kvTransitionsPerSecond, 0)} KV transitions/s back to back`,
    "≥ 1,000 /s",
    yes(m.registration.perSecond >= 1000),
  ]);
  rows.push([
    `registration, one call (monitor --create-fifo), one keep-alive client (${
      count(m.oneCall.count)
    })`,
    `${fmt(m.oneCall.perSecond, 0)} /s (median ${fmt(m.oneCall.monitor.p50, 2)} ms)`,
    "same",
    "≥ 1,000 /s",
    yes(m.oneCall.perSecond >= 1000),
  ]);
  if (top !== null) {
    rows.push([
      `registration, ${IN_FLIGHT} requests in flight (N=${count(top.n)})`,
      `${fmt(top.registerPerSecond, 0)} /s`,
      "",
      "",
      "–",
    ]);
  }
  const slope = slopeKiB(m);
  rows.push([
    `daemon RSS per container, settled, slope from ${count(m.step)} to ${count(m.n)}`,
    `${fmt(slope, 2)} KiB ((RSS at N − idle) / N: ${fmt(perContainerKiB(m.atN, m.idle, m.n), 2)})`,
    `Deno KV alone, same records and events: ${fmt(kv.slopeKiB, 2)} KiB`,
    "≤ 2 KiB",
    // A slope below 0 says the RSS at the first step had not settled yet: no verdict then.
    slope < 0 ? "– (unsettled)" : yes(slope <= 2),
  ]);
  rows.push([
    `cleanup after ${count(m.burst.size)} exits at once, instant runtime`,
    `${fmt(m.burst.cleanedPerSecond, 0)} /s`,
    // These cleanups start one runtime process each (`delete --force`: the init is known
    // dead), so the ceiling is the whole 8-in-flight spawn rate.
    `spawn ceiling, one process each: ${fmt(c.spawnPerSecond8, 0)} /s (C), ${
      fmt(k.spawnsPerSecond8, 0)
    } /s (runner)`,
    "≥ 200 /s",
    yes(m.burst.cleanedPerSecond >= 200),
  ]);
  rows.push([
    `GC of ${count(m.gc.count)} entries, instant runtime`,
    `${fmt(m.gc.perSecond, 0)} /s`,
    "same ceiling",
    "≥ 200 /s",
    yes(m.gc.perSecond >= 200),
  ]);
  for (const e of extra) rows.push([e.measure, e.measured, "", e.goal, yes(e.met)]);
  return markdownTable(["measure", "measured", "floor in this run", "goal", "met"], rows);
}

function detailTable(m: MainResult, top: TopResult | null): string {
  const head = ["measure", `N = ${count(m.n)}`, ...(top === null ? [] : [`N = ${count(top.n)}`])];
  const row = (name: string, a: string, b = "") => top === null ? [name, a] : [name, a, b];
  const lat = (name: string, f: (l: LatencyResult) => string) =>
    row(name, f(m.latency), top === null ? "" : f(top.latency));
  return markdownTable(head, [
    lat(
      "exit: write → exit event on the stream (ms) p50 / p99 / max",
      (l) => fmtSummary(l.toRecorded, 2),
    ),
    lat(
      "exit: write → decoded by the epoll loop (ms) p50 / p99 / max",
      (l) => fmtSummary(l.toDecoded),
    ),
    lat(
      "exit: decoded → committed, daemon histogram (ms) p50 ≤ / p99 ≤ / mean",
      (l) => `${fmt(l.daemon.p50)} / ${fmt(l.daemon.p99)} / ${fmt(l.daemon.mean)}`,
    ),
    lat(
      "exit: write → cleaned up (`stopped`) (ms) p50 / p99 / max",
      (l) => fmtSummary(l.toCleaned),
    ),
    row(
      "registration: create-fifo (ms) p50 / p99 / max",
      fmtSummary(m.registration.createFifo, 2),
    ),
    row("registration: monitor (ms) p50 / p99 / max", fmtSummary(m.registration.monitor, 2)),
    row(
      "registration: monitor --create-fifo (ms) p50 / p99 / max",
      fmtSummary(m.oneCall.monitor, 2),
    ),
    row(
      "socket round trip: GET /v1/health, one client, one at a time (per s)",
      fmt(m.healthPerSecond, 0),
    ),
    row(`all exit at once: first write → all recorded (ms)`, fmt(m.burst.allRecordedMs, 0)),
    row(
      "all exit at once: each, write → exit event (ms) p50 / p99 / max",
      fmtSummary(m.burst.perExit, 0),
    ),
    row("all exit at once: first write → all cleaned up (ms)", fmt(m.burst.allCleanedMs, 0)),
    row(
      "all exit at once: daemon CPU per exit, cleanup included (ms)",
      fmt(m.burstCpuPerExitMs, 2),
    ),
    row("GC: daemon CPU per entry (ms)", fmt(m.gcCpuPerEntryMs, 2)),
    row("daemon RSS just started (MiB)", fmt(m.cold.rssKiB / MiB)),
    row(
      "daemon RSS at 0 monitored, warmed up, settled (MiB)",
      fmt(m.idle.rssKiB / MiB),
      top === null ? "" : fmt(top.idle.rssKiB / MiB),
    ),
    row(`daemon RSS at ${count(m.step)} monitored, settled (MiB)`, fmt(m.atStep.rssKiB / MiB)),
    row(
      "daemon RSS at N, settled (MiB)",
      fmt(m.atN.rssKiB / MiB),
      top === null ? "" : fmt(top.atN.rssKiB / MiB),
    ),
    row(
      "RSS per container, (RSS at N − idle) / N (KiB)",
      fmt(perContainerKiB(m.atN, m.idle, m.n), 2),
      top === null ? "" : fmt(perContainerKiB(top.atN, top.idle, top.n), 2),
    ),
    row(
      "anonymous RSS per container, slope (KiB)",
      fmt((m.atN.anonKiB - m.atStep.anonKiB) / (m.n - m.step), 2),
    ),
    row("descriptors idle → at N", `${m.idleFds} → ${m.fdsAtN}`),
    row("start → READY=1, empty store (ms)", fmt(m.readyEmptyMs, 0)),
  ]);
}

function restoreTable(r: RestoreResult): string {
  return markdownTable(["restore", "value"], [
    ["running records (monitored before the restart)", count(r.running)],
    ["GC entries", count(r.gcEntries)],
    ["records in the store, every state", count(r.records)],
    ["SIGTERM → old daemon gone (ms)", fmt(r.stopMs, 0)],
    ["spawn → READY=1 (ms)", fmt(r.readyMs, 0)],
    ["spawn → first healthy answer on the socket (ms)", fmt(r.healthyMs, 0)],
    ["monitored / in GC after the restart", `${count(r.monitoredAfter)} / ${count(r.gcAfter)}`],
    ["RSS right after READY (MiB)", fmt(r.rssKiB / MiB)],
  ]);
}

async function runReadLoad(readers: number): Promise<ReadLoadResult> {
  const rig = await startRig("reads");
  return await measureReadLoad(rig.daemon, rig.feed, rig.writer, rig.ghost, {
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

function conmonTable(c: ConmonResult, m: MainResult): string {
  if (!c.ok) return `conmon baseline not measured: ${c.reason}`;
  const rss = slopeKiB(m);
  return markdownTable(["peer baseline", "value"], [
    [
      `conmon (${c.version}), one per container, ${c.count} containers: RSS`,
      `${fmt(c.mean.rssKiB)} KiB`,
    ],
    ["conmon: PSS (shared pages split between the conmons)", `${fmt(c.mean.pssKiB)} KiB`],
    ["conmon: anonymous RSS", `${fmt(c.mean.anonKiB)} KiB`],
    ["conmon: descriptors", fmt(c.fds, 1)],
    [`reaperd: RSS per container (slope to N=${count(m.n)})`, `${fmt(rss, 2)} KiB`],
    ["conmon RSS / reaperd RSS per container", rss > 0 ? `${fmt(c.mean.rssKiB / rss, 0)}×` : "–"],
  ]);
}

function floorTable(c: CFloors, k: Ceilings, kv: KvMemory, o: Options): string {
  return markdownTable(["floor on this machine (no daemon)", "value"], [
    [
      "C: exit write → line after epoll + read + fsync'd record (ms) p50 / p99 / max",
      fmtSummary(c.exit, 2),
    ],
    ["C: `/bin/true` by posix_spawn + waitpid, one at a time, per s", fmt(c.spawnPerSecond, 0)],
    ["C: `/bin/true` by posix_spawn + waitpid, 8 in flight, per s", fmt(c.spawnPerSecond8, 0)],
    [
      "one KV transition (getMany + atomic check/set/commit, fsync'ed), spaced (ms) p50 / p99 / max",
      fmtSummary(k.kvTransition, 2),
    ],
    ["KV transitions back to back, per s", fmt(k.kvTransitionsPerSecond, 0)],
    ["`/bin/true` run by reaperd's runner, one at a time, per s", fmt(k.spawnsPerSecond, 0)],
    ["`/bin/true` run by reaperd's runner, 8 in flight, per s", fmt(k.spawnsPerSecond8, 0)],
    ["`/bin/true` run by Deno.Command, 8 in flight, per s", fmt(k.denoCommandPerSecond8, 0)],
    [
      `Deno KV alone, a record and its event per container: RSS at ${count(o.step)} → ${
        count(o.containers)
      } (MiB), slope (KiB)`,
      `${fmt(kv.rssAtStepKiB / MiB)} → ${fmt(kv.rssAtNKiB / MiB)}, ${fmt(kv.slopeKiB, 2)}`,
    ],
  ]);
}

function machineTable(m: Machine, o: Options, wallS: number, load: string[]): string {
  return markdownTable(["machine", ""], [
    ["date", m.date],
    ["CPU", m.cpu],
    ["cores", String(m.cores)],
    ["memory", `${m.memoryGiB} GiB`],
    ["kernel", m.kernel],
    ["deno", `${m.deno} (V8 ${m.v8})`],
    ["store on", m.tmpFs],
    [
      "state root on",
      STATE_FS === undefined ? "the temp dir (no tmpfs found)" : `tmpfs (${STATE_FS})`,
    ],
    ["reaperd commit", m.commit],
    ["run", `deno task bench ${Deno.args.join(" ")}`.trim()],
    [
      "sizes",
      `N = ${count(o.containers)} (RSS slope from ${count(o.step)}) and ${
        count(o.top)
      }; ${o.exits} exits ${o.gap} ms apart; GC ${o.gc}; restore GC ${o.restoreGc}; readers ${o.readers}; conmon ${o.conmon}`,
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
  progress("floors: C exit path and process start, KV commit, reaperd's runner");
  const cFloors = await measureCFloors(options);
  const scratch = await Deno.makeTempDir({ prefix: "reaperd-bench-floor-" });
  let ceilings: Ceilings;
  let kvMemory: KvMemory;
  try {
    ceilings = await measureCeilings(scratch);
    kvMemory = await measureKvMemory(scratch, options.step, options.containers);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  // One throw-away start, so that fetching npm packages and transpiling on a fresh machine is
  // not counted as the first start-up.
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
  const mainResult = await runMain(options);
  await runUndo();
  let top: TopResult | null = null;
  if (options.top > 0) {
    top = await runTop(options);
    await runUndo();
  }
  // Exit recording while hundreds of keep-alive clients read (read_load.ts).
  let readLoad: ReadLoadResult | null = null;
  if (options.readers > 0) {
    progress(`read load: ${options.readers} keep-alive readers, 200 containers, 200 exits`);
    readLoad = await runReadLoad(options.readers);
    await runUndo();
  }
  const extra: ExtraRow[] = [{
    measure: `exit recording under ${options.readers} keep-alive readers (\`ps\`/\`inspect\`), p99`,
    measured: readLoad === null
      ? "not measured (--readers=0)"
      : `${fmt(readLoad.toRecorded.p99)} ms`,
    goal: "≤ 100 ms p99",
    met: readLoad === null ? null : readLoad.toRecorded.p99 <= 100,
  }];
  let conmon: ConmonResult = { ok: false, reason: "skipped (--conmon=0)" };
  if (options.conmon > 0) {
    progress(`conmon baseline: ${options.conmon} runc containers`);
    conmon = await measureConmon(options.conmon);
  }
  const wallS = (nowMs() - started) / 1000;
  load.push(loadAverage());
  const report = [
    goalsTable(mainResult, top, cFloors, ceilings, kvMemory, extra),
    "",
    detailTable(mainResult, top),
    "",
    top?.restore ? restoreTable(top.restore) : "restore not measured",
    "",
    readLoad === null ? "read load not measured" : readLoadTable(readLoad),
    "",
    conmonTable(conmon, mainResult),
    "",
    floorTable(cFloors, ceilings, kvMemory, options),
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
