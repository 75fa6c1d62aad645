/**
 * The kill -9 scenario shared by `tests/crash_kill9_test.ts` (short, in `deno task test`) and
 * `tests/soak/crash_soak.ts` (long, `deno task soak`).
 *
 * It runs the real daemon with a few hundred containers, each a real test shim
 * (tests/fixtures/test_shim.c) whose container process is `sh` waiting on a control FIFO for
 * the code it must exit with. It then makes containers exit in storms and SIGKILLs the
 * daemon at random instants, alternately while exits are being recorded and while the
 * collector is retrying cleanups (a share of the containers' runtime refuses `delete` a few
 * times), sometimes lets containers exit while the daemon is down, and restarts it each time.
 * After the last restart every remaining container exits, the daemon drains, and
 * {@linkcode checkCrashRun} holds the run against what reaperd promises (docs/architecture.md §4, §7).
 *
 * What "lost" means here, precisely. A shim that writes its status while no daemon holds the
 * read end gets EPIPE: that status is gone, and the exit must be recorded unknown (a known
 * code there would be made up). A shim that wrote while a daemon held the read end can lose
 * its status only if that daemon was killed before recording it; the exit may then be unknown
 * only if a kill fell after the trigger and within twice the slowest recording the run saw
 * (at least a second). Anything else is a violation.
 *
 * @module
 */

import { isAlive } from "../../src/sys/proc.ts";
import { Signal, signalProcess } from "../../src/sys/signal.ts";
import type { ReaperEvent } from "../../src/store/events.ts";
import type { ContainerRecord, GcEntry } from "../../src/types.ts";
import { buildTestShim, type RunningShim, stopShim } from "../fixtures/shim.ts";
import { type FdStoreStats, TestDaemon } from "./daemon.ts";
import {
  allEvents,
  crashRuntime,
  getJson,
  openFds,
  openFdsBesideChildren,
  processesUnder,
  sleep,
  startContainer,
  writeControl,
} from "./fault_util.ts";

/** The runtime's name in the daemon's config (the `--root` dir inside each state dir). */
export const CRASH_RUNTIME_NAME = "crt";

/** How a crash run is shaped. */
export interface CrashOptions {
  /** Containers running at once: registered up front, topped up between kills. */
  containers: number;
  /** SIGKILLs of the daemon, each followed by a restart. */
  kills: number;
  /** Seed of every random choice: the same seed makes the same choices (timing still varies). */
  seed: number;
  /** Share of containers whose runtime refuses `delete` 1–3 times (they go through GC). */
  gcShare?: number;
  /** Most containers exiting while the daemon is down, per kill. */
  maxDownExits?: number;
  /** How long the final drain may take (ms). */
  drainTimeoutMs?: number;
  /**
   * Run the daemon under the test service manager with an fd store of this many fds (0: a
   * manager without a store, as systemd by default); absent: run it directly, as today.
   */
  fdStoreMax?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** What one kill interrupted, as far as the test can tell. */
export interface KillRecord {
  /** When SIGKILL was sent (ms since the epoch). */
  at: number;
  /** When the restarted daemon answered again. */
  readyAt: number;
  /** Aimed at exit recording or at GC retries. */
  aim: "recording" | "gc";
  /** Exits triggered in the storm before this kill that had no durable record yet. */
  unrecordedExits: number;
  /** Containers in GC when the daemon was killed (from its last health answer). */
  gcEntries: number;
  /** Exits triggered while this daemon was down. */
  downExits: number;
}

/** One container of the run and its truth. */
interface Box {
  id: string;
  stateDir: string;
  shim: RunningShim;
  /** Deletes the runtime refuses before one succeeds. */
  failDeletes: number;
  /** The code the container exits with, set when it is triggered. */
  code: number | null;
  triggeredAt: number | null;
  /** When the test saw the shim end; whether its FIFO write reached a reader. */
  shimEndedAt: number | null;
  shimWrote: boolean | null;
}

/** Everything a run observed; {@linkcode checkCrashRun} judges it. */
export interface CrashRun {
  options: Required<Omit<CrashOptions, "log" | "fdStoreMax">> & { fdStoreMax: number | null };
  /** The service manager's fd store after the drain (null when run without a manager). */
  fdStore: FdStoreStats | null;
  kills: KillRecord[];
  boxes: Box[];
  records: Map<string, ContainerRecord>;
  gcLeft: GcEntry[];
  events: ReaperEvent[];
  runtimeLog: string[];
  /** State dirs still on disk after the drain. */
  leftoverDirs: string[];
  /** Non-zombie processes still running that belong to the run (other than the daemon). */
  leftoverProcesses: string[];
  /** The daemon's descriptors after the drain that point at FIFOs, pidfds or state dirs. */
  leakedFds: string[];
  /** The daemon's descriptor count right after its first start, and after the drain. */
  fdsAtStart: number;
  fdsAtEnd: number;
  /** Pipe descriptors at start and end. */
  pipesAtStart: number;
  pipesAtEnd: number;
  durationMs: number;
  /** The daemon's logs over every restart, for failure messages. */
  daemonLogs: string;
}

/** The verdict on a run, with the counts a report gives. */
export interface CrashVerdict {
  /** Every broken promise, one line each. Empty means nothing was lost. */
  violations: string[];
  killsSurvived: number;
  killsAimedAtRecording: number;
  killsAimedAtGc: number;
  /** Kills that fell while exits were unrecorded or cleanups were pending. */
  killsWithWorkInFlight: number;
  containers: number;
  exitsKnown: number;
  /** Unknown because the shim wrote while no daemon held the FIFO (status gone with EPIPE). */
  unknownWhileDown: number;
  /** Unknown because the daemon was killed between the shim's write and the record. */
  unknownInFlight: number;
  /** Every exit recorded unknown, whatever the cause. */
  unknown: number;
  /** Containers whose cleanup went through the collector (a "gc" event). */
  wentThroughGc: number;
  /** Runtime calls that found the container already gone (a step that ran again, harmlessly). */
  repeatedRuntimeCalls: number;
  /** Trigger → durable exit record among known exits (ms): median, 99th percentile, slowest. */
  recordLatencyMs: { p50: number; p99: number; max: number };
  /** Slowest trigger → durable exit record among known exits (ms). */
  maxRecordLatencyMs: number;
  /** The window used to accept an in-flight unknown (ms). */
  inFlightWindowMs: number;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same schedule. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Registers one container: create-fifo, control FIFO, runtime state, shim, monitor. */
async function register(daemon: TestDaemon, id: string, failDeletes: number): Promise<Box> {
  const c = await startContainer(daemon, { id, runtime: CRASH_RUNTIME_NAME, failDeletes });
  const box: Box = {
    id,
    stateDir: c.stateDir,
    shim: c.shim,
    failDeletes,
    code: null,
    triggeredAt: null,
    shimEndedAt: null,
    shimWrote: null,
  };
  c.shim.status.then((s) => {
    box.shimEndedAt = Date.now();
    // test_shim exits 0 only after its 4-byte write went through; EPIPE kills it (SIGPIPE)
    // or makes it exit 1.
    box.shimWrote = s.success;
  });
  return box;
}

/** Makes a container exit with a random code: mostly a plain code, sometimes by a signal. */
async function trigger(box: Box, random: () => number): Promise<void> {
  box.triggeredAt = Date.now();
  const r = random();
  if (r < 0.1) {
    box.code = 128 + Signal.SIGKILL;
    signalProcess(box.shim.container, Signal.SIGKILL);
  } else if (r < 0.15) {
    box.code = 128 + Signal.SIGTERM;
    signalProcess(box.shim.container, Signal.SIGTERM);
  } else {
    box.code = Math.floor(random() * 256);
    await writeControl(box.stateDir, box.code);
  }
}

function pick<T>(items: T[], n: number, random: () => number): T[] {
  const copy = [...items];
  const out: T[] = [];
  while (out.length < n && copy.length > 0) {
    out.push(copy.splice(Math.floor(random() * copy.length), 1)[0]!);
  }
  return out;
}

async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>) {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(...await Promise.all(items.slice(i, i + size).map(fn)));
  }
  return out;
}

/**
 * Runs the scenario and gathers what it observed. Cleans up after itself (processes, the
 * daemon, the temp dir) whatever happens; throws only when the run itself could not proceed.
 */
export async function runCrashScenario(options: CrashOptions): Promise<CrashRun> {
  const opts = {
    gcShare: 0.35,
    maxDownExits: 3,
    drainTimeoutMs: 90_000,
    ...options,
  };
  const log = options.log ?? (() => {});
  const random = seededRandom(opts.seed);
  const started = Date.now();
  await buildTestShim();
  const runtimeLogPath = await Deno.makeTempFile({
    prefix: "reaperd-crash-runtime-",
    suffix: ".log",
  });
  const daemon = await TestDaemon.start({
    runtimes: crashRuntime(CRASH_RUNTIME_NAME, runtimeLogPath),
    gc: { backoffBaseMs: 100, backoffMaxMs: 800, stepTimeoutMs: 10_000 },
    ...(options.fdStoreMax === undefined ? {} : {
      serviceManager: { storeMax: options.fdStoreMax },
    }),
  });
  const boxes: Box[] = [];
  const kills: KillRecord[] = [];
  try {
    const startFds = openFds(daemon.pid);
    const fdsAtStart = startFds.length;
    const pipesAtStart = startFds.filter((l) => l.startsWith("pipe:")).length;

    // Registration runs between kills, never during one: the pool starts full and is topped
    // up whenever fewer than half of it still run.
    let next = 0;
    const running = () => boxes.filter((b) => b.triggeredAt === null);
    const refill = async () => {
      const want = opts.containers - running().length;
      const plans = Array.from({ length: want }, () => ({
        id: `c${String(next++).padStart(5, "0")}`,
        failDeletes: random() < opts.gcShare ? 1 + Math.floor(random() * 3) : 0,
      }));
      boxes.push(...await inBatches(plans, 16, (p) => register(daemon, p.id, p.failDeletes)));
      log(`registered ${plans.length} containers (${boxes.length} in all)`);
    };
    await refill();
    for (let k = 0; k < opts.kills; k++) {
      const aim: KillRecord["aim"] = k % 2 === 0 ? "recording" : "gc";
      if (running().length < opts.containers / 2) await refill();
      // A storm: 2.5–6 % of the pool, all at once.
      const stormSize = Math.max(3, Math.round(opts.containers * (0.025 + random() * 0.035)));
      const storm = pick(running(), stormSize, random);
      await Promise.all(storm.map((b) => trigger(b, random)));
      let gcEntries = 0;
      if (aim === "recording") {
        // Within the usual trigger → record time (tens of ms): most kills land mid-recording.
        await sleep(random() * 40);
      } else {
        // Wait for the collector to hold entries, then kill somewhere in its retries.
        const until = Date.now() + 3_000;
        while (Date.now() < until) {
          const health = await getJson<{ gc: number }>(daemon, "/v1/health").catch(() => null);
          if (health !== null && health.gc > 0) {
            gcEntries = health.gc;
            break;
          }
          await sleep(20);
        }
        await sleep(random() * 600);
      }
      const at = Date.now();
      await daemon.stop("SIGKILL");

      // Some containers exit while no daemon holds their FIFO: their status is lost.
      const down = pick(running(), Math.floor(random() * (opts.maxDownExits + 1)), random);
      await Promise.all(down.map((b) => trigger(b, random)));
      const settle = Date.now() + 5_000;
      while (down.some((b) => b.shimEndedAt === null) && Date.now() < settle) await sleep(10);

      await daemon.restart();
      // Exits that were not recorded when the daemon died: triggered before, and recorded (if
      // at all yet) only after. Asked after the restart, as a list asked before the kill waits
      // for exits being recorded and would see none of them.
      const unrecordedExits = await getJson<ContainerRecord[]>(daemon, "/v1/containers")
        .then((list) => {
          const byId = new Map(list.map((r) => [r.id, r]));
          return boxes.filter((b) => {
            if (b.triggeredAt === null || b.triggeredAt >= at || down.includes(b)) return false;
            const exit = byId.get(b.id)?.exit;
            return exit === null || exit === undefined || exit.at >= at;
          }).length;
        })
        .catch(() => -1);
      kills.push({
        at,
        readyAt: Date.now(),
        aim,
        unrecordedExits,
        gcEntries,
        downExits: down.length,
      });
      log(
        `kill ${k + 1}/${opts.kills} (${aim}): storm ${storm.length}, ${unrecordedExits} ` +
          `unrecorded, ${gcEntries} in GC, ${down.length} exited while down`,
      );
    }

    // The end: everything still running exits, and the daemon drains with no more kills.
    await Promise.all(running().map((b) => trigger(b, random)));
    const drainUntil = Date.now() + opts.drainTimeoutMs;
    let records: ContainerRecord[] = [];
    let gcLeft: GcEntry[] = [];
    for (;;) {
      records = await getJson<ContainerRecord[]>(daemon, "/v1/containers");
      const views = await getJson<{ entry: GcEntry }[]>(daemon, "/v1/gc");
      gcLeft = views.map((v) => v.entry);
      const settled = records.length === boxes.length &&
        records.every((r) => r.state === "stopped") && gcLeft.length === 0 &&
        boxes.every((b) => b.shimEndedAt !== null);
      if (settled || Date.now() > drainUntil) break;
      await sleep(200);
    }
    log("drained");
    const events = await allEvents(daemon);
    // Orphaned runtime calls of killed daemons have finished by now (they take milliseconds).
    const runtimeLog = (await Deno.readTextFile(runtimeLogPath)).split("\n").filter((l) => l);
    const leftoverDirs: string[] = [];
    try {
      for (const e of Deno.readDirSync(`${daemon.stateRoot}/${CRASH_RUNTIME_NAME}`)) {
        leftoverDirs.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const endFds = openFdsBesideChildren(daemon.pid);
    const leakedFds = endFds.filter((l) =>
      l.startsWith(daemon.stateRoot) || l.endsWith("/exit_fifo") || l === "anon_inode:[pidfd]"
    );
    const leftoverProcesses = processesUnder(
      daemon.dir,
      [daemon.pid, ...(daemon.managerPid === null ? [] : [daemon.managerPid])],
    );
    const fdStore = options.fdStoreMax === undefined ? null : await daemon.fdStoreStats();
    return {
      options: {
        containers: opts.containers,
        kills: opts.kills,
        seed: opts.seed,
        gcShare: opts.gcShare,
        maxDownExits: opts.maxDownExits,
        drainTimeoutMs: opts.drainTimeoutMs,
        fdStoreMax: options.fdStoreMax ?? null,
      },
      fdStore,
      kills,
      boxes,
      records: new Map(records.map((r) => [r.id, r])),
      gcLeft,
      events,
      runtimeLog,
      leftoverDirs,
      leftoverProcesses,
      leakedFds,
      fdsAtStart,
      fdsAtEnd: endFds.length,
      pipesAtStart,
      pipesAtEnd: endFds.filter((l) => l.startsWith("pipe:")).length,
      durationMs: Date.now() - started,
      daemonLogs: daemon.logs,
    };
  } finally {
    // Nothing here may keep the daemon or the log from going.
    await Promise.all(boxes.map((b) => stopShim(b.shim).catch(() => {})));
    await daemon.dispose();
    await Deno.remove(runtimeLogPath).catch(() => {});
  }
}

/** Judges a run against reaperd's promises; see the module doc for what counts as lost. */
export function checkCrashRun(run: CrashRun): CrashVerdict {
  const violations: string[] = [];
  const byId = new Map<string, ReaperEvent[]>();
  for (const e of run.events) {
    // The daemon's own events (restore) are about no container.
    if (e.id === null) continue;
    const list = byId.get(e.id) ?? [];
    list.push(e);
    byId.set(e.id, list);
  }
  const runtimeCalls = new Map<string, string[]>();
  for (const line of run.runtimeLog) {
    const id = line.split(" ")[1] ?? "";
    const list = runtimeCalls.get(id) ?? [];
    list.push(line);
    runtimeCalls.set(id, list);
  }

  // The slowest recording the daemon managed sets the window in which a kill can lose a
  // status that reached the pipe.
  const latencies: number[] = [];
  for (const box of run.boxes) {
    const exit = byId.get(box.id)?.find((e) => e.kind === "exit");
    const record = run.records.get(box.id);
    if (exit !== undefined && record?.exit?.known && box.triggeredAt !== null) {
      latencies.push(Math.max(0, exit.at - box.triggeredAt));
    }
  }
  latencies.sort((a, b) => a - b);
  const quantile = (q: number) => latencies[Math.floor(q * (latencies.length - 1))] ?? 0;
  const maxLatency = latencies[latencies.length - 1] ?? 0;
  const window = Math.max(1_000, Math.round(maxLatency * 2));

  // With an fd store, no status can be lost: every exit must be known.
  const withStore = (run.options.fdStoreMax ?? 0) > 0;
  let exitsKnown = 0;
  let unknownAll = 0;
  let unknownWhileDown = 0;
  let unknownInFlight = 0;
  let wentThroughGc = 0;
  let repeated = 0;
  for (const box of run.boxes) {
    const where = `container ${box.id}`;
    const record = run.records.get(box.id);
    const events = byId.get(box.id) ?? [];
    if (record === undefined) {
      violations.push(`${where} is missing from the store`);
      continue;
    }
    if (record.state !== "stopped") violations.push(`${where} ended ${record.state}, not stopped`);
    const exits = events.filter((e) => e.kind === "exit");
    if (exits.length !== 1) violations.push(`${where} has ${exits.length} exit events, not 1`);
    const exit = record.exit;
    if (exit === null) {
      violations.push(`${where} has no exit recorded`);
    } else if (box.code === null || box.triggeredAt === null) {
      violations.push(`${where} has an exit recorded but was never made to exit`);
    } else if (exit.known) {
      exitsKnown++;
      if (exit.code !== box.code) {
        violations.push(`${where} recorded code ${exit.code}, its true code is ${box.code}`);
      }
      if (box.shimWrote === false) {
        violations.push(
          `${where} recorded a known code ${exit.code} although its status was lost (EPIPE)`,
        );
      }
    } else {
      unknownAll++;
      if (exit.reason.trim() === "") violations.push(`${where} is unknown without a reason`);
      if (withStore) {
        violations.push(
          `${where} recorded unknown (${exit.reason}) although the fd store kept its read end`,
        );
      }
      if (box.shimWrote === false) {
        unknownWhileDown++;
      } else {
        const t = box.triggeredAt;
        const killed = run.kills.some((k) => k.at >= t - 50 && k.at <= t + window);
        if (killed) {
          unknownInFlight++;
        } else {
          violations.push(
            `${where} recorded unknown (${exit.reason}) though its shim wrote the status and ` +
              `no kill fell within ${window} ms of its exit`,
          );
        }
      }
    }
    const ends = events.filter((e) => e.kind === "stopped" || e.kind === "gc-done");
    if (ends.length !== 1) violations.push(`${where} was stopped ${ends.length} times, not once`);
    const gcEvents = events.filter((e) => e.kind === "gc");
    if (gcEvents.length > 1) violations.push(`${where} entered GC ${gcEvents.length} times`);
    if (gcEvents.length === 1) {
      wentThroughGc++;
      if (ends[0]?.kind !== "gc-done") {
        violations.push(`${where} entered GC but did not leave it through a finished cleanup`);
      }
    }
    // The runtime's own state tells whether cleanup really ran: one effective delete, and
    // every repeated call found the container gone (harmless).
    const calls = runtimeCalls.get(box.id) ?? [];
    const deletes = calls.filter((l) => l === `delete ${box.id}`).length;
    if (deletes !== 1) {
      violations.push(`${where}: the runtime deleted it ${deletes} times, not once`);
    }
    const refused = calls.filter((l) => l === `delete ${box.id} failed`).length;
    if (refused !== box.failDeletes) {
      violations.push(`${where}: ${refused} refused deletes, expected ${box.failDeletes}`);
    }
    repeated += calls.filter((l) => l.endsWith(" absent")).length;
    if (isAlive(box.shim.container)) violations.push(`${where}: its process is still alive`);
    if (isAlive(box.shim.shim)) violations.push(`${where}: its shim is still alive`);
  }
  if (run.records.size !== run.boxes.length) {
    violations.push(
      `the store holds ${run.records.size} containers, the run had ${run.boxes.length}`,
    );
  }
  if (run.gcLeft.length > 0) {
    violations.push(`${run.gcLeft.length} GC entries left: ${run.gcLeft.map((e) => e.id)}`);
  }
  if (run.leftoverDirs.length > 0) {
    violations.push(`state dirs left behind: ${run.leftoverDirs.slice(0, 10).join(", ")}`);
  }
  if (run.leftoverProcesses.length > 0) {
    violations.push(`processes left behind: ${run.leftoverProcesses.slice(0, 5).join("; ")}`);
  }
  if (run.leakedFds.length > 0) {
    violations.push(`the daemon still holds: ${run.leakedFds.slice(0, 10).join(", ")}`);
  }
  if (run.pipesAtEnd > run.pipesAtStart) {
    violations.push(`the daemon holds ${run.pipesAtEnd} pipes, ${run.pipesAtStart} at start`);
  }
  // Sockets of the test's own keep-alive connections may come and go; nothing else should.
  if (run.fdsAtEnd > run.fdsAtStart + 4) {
    violations.push(
      `the daemon holds ${run.fdsAtEnd} fds after the drain, ${run.fdsAtStart} at start`,
    );
  }
  if (run.fdStore !== null && withStore) {
    const s = run.fdStore;
    if (s.stored > 0) violations.push(`the fd store still holds ${s.stored} fds after the drain`);
    if (s.refused > 0) violations.push(`the fd store refused ${s.refused} fds`);
    if (s.hup > 0) violations.push(`the fd store dropped ${s.hup} fds on hang-up (no FDPOLL=0)`);
    if (s.duplicates > 0) violations.push(`${s.duplicates} fds were stored twice under one name`);
  }
  const seqs = run.events.map((e) => e.seq);
  if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1]!)) {
    violations.push("the event log's sequence numbers are not strictly increasing");
  }

  return {
    violations,
    killsSurvived: run.kills.length,
    killsAimedAtRecording: run.kills.filter((k) => k.aim === "recording").length,
    killsAimedAtGc: run.kills.filter((k) => k.aim === "gc").length,
    killsWithWorkInFlight: run.kills.filter((k) => k.unrecordedExits > 0 || k.gcEntries > 0)
      .length,
    containers: run.boxes.length,
    exitsKnown,
    unknownWhileDown,
    unknownInFlight,
    unknown: unknownAll,
    wentThroughGc,
    repeatedRuntimeCalls: repeated,
    recordLatencyMs: { p50: quantile(0.5), p99: quantile(0.99), max: maxLatency },
    maxRecordLatencyMs: maxLatency,
    inFlightWindowMs: window,
  };
}

/** One line with the counts, for logs and reports. */
export function describeVerdict(v: CrashVerdict, run: CrashRun): string {
  const store = run.options.fdStoreMax === null
    ? "no service manager"
    : run.options.fdStoreMax === 0
    ? "service manager without fd store"
    : `fd store of ${run.options.fdStoreMax} (${run.fdStore?.received ?? 0} kept, ` +
      `${run.fdStore?.removed ?? 0} removed, ${run.fdStore?.stored ?? 0} left)`;
  return `seed ${run.options.seed}, ${store}: ${v.killsSurvived} kills survived ` +
    `(${v.killsAimedAtRecording} aimed at recording, ${v.killsAimedAtGc} at GC, ` +
    `${v.killsWithWorkInFlight} with work in flight); ${v.containers} containers: ` +
    `${v.exitsKnown} exits known and correct, ${v.unknown} unknown in all, ` +
    `${v.unknownWhileDown} unknown (exited while ` +
    `down), ${v.unknownInFlight} unknown (killed between write and record, window ` +
    `${v.inFlightWindowMs} ms); ${v.wentThroughGc} through GC; ${v.repeatedRuntimeCalls} ` +
    `harmless repeated runtime calls; trigger→record ${v.recordLatencyMs.p50} ms median, ` +
    `${v.recordLatencyMs.p99} ms p99, ${v.recordLatencyMs.max} ms max; ` +
    `${v.violations.length} violations; ${Math.round(run.durationMs / 1000)} s`;
}
