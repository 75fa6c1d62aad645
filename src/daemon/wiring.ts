/**
 * How the daemon's parts are wired: the supervisor's exits go down the exit path, which hands
 * each recorded container to the collector; the collector yields to exits being recorded; the
 * collector's and the exit path's events feed the metrics and the GC log; the OOM watch judges
 * each exit before it is written.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { Collector } from "../gc/collector.ts";
import type { Cleaner } from "../gc/cleaner.ts";
import type { Store } from "../store/store.ts";
import { HeldFifos } from "../supervisor/held_fifos.ts";
import { Supervisor } from "../supervisor/supervisor.ts";
import { DaemonMetrics } from "./daemon_metrics.ts";
import { FifoReadEnds } from "./fd_store.ts";
import { OomWatch } from "./oom_watch.ts";
import { ExitPath } from "./exit_path.ts";
import { gcLogger } from "./gc_log.ts";
import { errorMessage } from "../error_message.ts";

/** What {@linkcode wireParts} needs. */
export interface PartsInput {
  config: Config;
  store: Store;
  cleaner: Cleaner;
  log: Logger;
  /** Where the collector logs the GC's story; `log` when absent. */
  gcLog?: Logger | undefined;
  /** Wall clock (ms since the epoch). */
  now: () => number;
  /** FIFO read ends kept in the service manager's fd store (default: none kept). */
  readEnds?: FifoReadEnds | undefined;
  /** What was found wrong with the store at start (damage, lost history): health reports it. */
  storeProblems?: readonly string[] | undefined;
}

/** The supervisor's epoll loop as the watchdog sees it: poke it, then see it turned. */
export interface ExitLoop {
  readonly turns: number;
  poke(): void;
}

/** The daemon's parts, wired together. */
export interface Parts {
  collector: Collector;
  exitPath: ExitPath;
  supervisor: Supervisor;
  held: HeldFifos;
  metrics: DaemonMetrics;
  /** Every FIFO read end the daemon opens, as the service manager's fd store keeps it. */
  readEnds: FifoReadEnds;
  /** The memory cgroups of watched containers, to tell an OOM kill at exit. */
  oom: OomWatch;
  /** The supervisor's epoll loop, for the watchdog. */
  exitLoop: ExitLoop;
  /** Why health is degraded now; empty when it is not. */
  problems: () => string[];
}

/** Builds the parts and connects them; nothing is started. */
export function wireParts(input: PartsInput, version: string): Parts {
  const { config, store, log } = input;
  // The parts refer to each other through this object, filled in below.
  const p = {} as Parts;
  const atStart = (input.storeProblems ?? []).map((problem) => `store: ${problem}`);
  p.problems = () => [...p.exitPath.problems(), ...p.readEnds.problems(), ...atStart];
  p.oom = new OomWatch();
  p.readEnds = input.readEnds ??
    new FifoReadEnds({ stateRoot: config.stateRoot, socket: null, log });
  p.metrics = new DaemonMetrics({
    monitored: () => p.supervisor.size,
    heldFifos: () => p.held.size,
    heldExits: () => p.exitPath.held,
    degraded: () => p.problems().length > 0,
    gc: () => p.collector.stats(),
  }, version);
  const logGc = gcLogger(input.gcLog ?? log);
  p.collector = new Collector({
    store,
    cleaner: input.cleaner,
    concurrency: config.gc.concurrency,
    backoffBaseMs: config.gc.backoffBaseMs,
    backoffMaxMs: config.gc.backoffMaxMs,
    yieldTo: () => p.exitPath.drained(),
    onEvent: (event) => {
      p.metrics.onCollectorEvent(event);
      logGc(event);
    },
  });
  p.exitPath = new ExitPath({
    store,
    handOver: (record) => p.collector.takeExited(record),
    // Before the exit is written: whether the memory cgroup's OOM killer ended it.
    judge: ({ id, pidInfo, exit }) => p.oom.judge(id, pidInfo.pid, pidInfo.startTime, exit),
    settled: ({ id, pidInfo }) => p.oom.forget(id, pidInfo.pid, pidInfo.startTime),
    log,
    now: input.now,
    onEvent: p.metrics.onExitPathEvent,
  });
  p.supervisor = new Supervisor({
    onDone: (fifo) => p.readEnds.done(fifo),
    onExit: (report) => p.exitPath.report(report),
    onError: (error) => log.error("supervisor: {error}", { error: errorMessage(error) }),
  });
  p.exitLoop = {
    get turns() {
      return p.supervisor.loopTurns;
    },
    poke: () => p.supervisor.pokeLoop(),
  };
  p.held = new HeldFifos(
    config.heldFifoTimeoutMs,
    (fifo) => {
      log.warn("released the read end of {fifo}: never armed by monitor", { fifo });
      p.readEnds.done(fifo);
    },
    (fifo) => p.readEnds.open(fifo),
  );
  return p;
}
