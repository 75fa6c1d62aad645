/**
 * The daemon's start-up, in the seed's order (docs/architecture.md §3): the collector's restore
 * (the GC list and the containers left `stopping`), the supervisor's loop, the containers
 * recorded `running` re-armed and those found under the state root adopted, then the GC loop.
 * Re-arming opens each exit FIFO again and watches it; a container whose FIFO cannot be opened,
 * or whose process is gone with nothing in its FIFO, has its exit decided at once (unknown: it
 * died while reaperd was down) and goes down the exit path like any other.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import type { Collector } from "../gc/collector.ts";
import type { RestoreCounts } from "../store/events.ts";
import { StateLayout } from "../identity.ts";
import type { Store } from "../store/store.ts";
import { exitFifoName } from "../supervisor/exit_fifo.ts";
import type { HeldFifos } from "../supervisor/held_fifos.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import type { ContainerRecord } from "../types.ts";
import type { ExitPath } from "./exit_path.ts";
import type { DaemonMetrics } from "./daemon_metrics.ts";
import type { FifoReadEnds } from "./fd_store.ts";
import type { OomWatch } from "./oom_watch.ts";
import { sweepStateRoot } from "./sweep.ts";
import { errorMessage } from "../error_message.ts";

/** Why an exit decided at restart is unknown. */
const RESTORED_GONE = "exited while reaperd was down";

/** What {@linkcode restoreRunning} needs. */
export interface RestoreParts {
  supervisor: Pick<Supervisor, "start" | "add" | "has">;
  exitPath: Pick<ExitPath, "report">;
  oom: Pick<OomWatch, "watch">;
  readEnds: Pick<FifoReadEnds, "open" | "done" | "settle">;
  log: Logger;
  now: () => number;
}

/** What {@linkcode restoreAll} needs: the daemon's parts, its store and config. */
export interface StartUp extends RestoreParts {
  collector: Pick<Collector, "restore" | "start">;
  metrics: Pick<DaemonMetrics, "adopted">;
  held: HeldFifos;
  store: Store;
  config: Config;
}

/**
 * Takes up what the store and the state root hold, in the seed's order, then records the
 * `restore` event.
 *
 * @returns What was taken up.
 */
export async function restoreAll(parts: StartUp): Promise<RestoreCounts> {
  const { collector, supervisor, exitPath, store, config } = parts;
  // One read of the records for both states, taken before any exit can be recorded.
  const all = await store.list();
  const { stopping } = await collector.restore(all.filter((r) => r.state === "stopping"));
  supervisor.start();
  const records = all.filter((r) => r.state === "running");
  const running = restoreRunning(records, parts);
  // Read ends handed back that no running container took: held again for their monitor
  // (then not swept as orphans), or let go.
  await parts.readEnds.settle(store, parts.held);
  const swept = await sweepStateRoot({
    layout: new StateLayout(config.stateRoot, config.stateDirPattern),
    runtimes: Object.keys(config.runtimes),
    store,
    log: parts.log,
    open: (fifo) => parts.readEnds.open(fifo),
    done: (fifo) => parts.readEnds.done(fifo),
    watch: (record, fifo, fd) => watchRecord(supervisor, record, fifo, fd),
    exited: (report) => exitPath.report(report),
    held: (fifo) => parts.held.has(fifo),
    recorded: new Set(records.map((r) => r.id)),
  });
  parts.metrics.adopted = swept.adopted.length;
  collector.start();
  return await store.recordRestore({
    ...running,
    resumed: stopping,
    adopted: swept.adopted.length,
  });
}

/**
 * Re-arms every record in `running` (state `running`); the supervisor must be started.
 *
 * @returns How many are watched again and how many had exited.
 */
function restoreRunning(
  running: readonly ContainerRecord[],
  parts: RestoreParts,
): { monitored: number; exited: number } {
  let monitored = 0;
  let exited = 0;
  for (const record of running) {
    parts.oom.watch(record);
    const { id, name, runtime, pid, startTime, ppid, pStartTime } = record;
    const pidInfo = { pid, startTime, ppid, pStartTime };
    const fifo = exitFifoName(record.stateDir);
    let fd: number;
    try {
      fd = parts.readEnds.open(fifo);
    } catch (error) {
      const reason = `exit FIFO unusable after restart: ${errorMessage(error)}`;
      parts.log.warn("restore {id}: {reason}", { id, runtime, reason });
      parts.exitPath.report({
        id,
        name,
        runtime,
        fifo,
        pidInfo,
        exit: { code: null, signal: null, known: false, reason, at: parts.now() },
      });
      exited++;
      continue;
    }
    watchRecord(parts.supervisor, record, fifo, fd, RESTORED_GONE);
    if (parts.supervisor.has(id)) monitored++;
    else exited++;
  }
  return { monitored, exited };
}

/** Hands a recorded container's FIFO read end to the supervisor (which then owns `fd`). */
export function watchRecord(
  supervisor: Pick<Supervisor, "add">,
  record: ContainerRecord,
  fifo: string,
  fd: number,
  goneReason?: string,
): void {
  const { id, name, runtime, pid, startTime, ppid, pStartTime } = record;
  supervisor.add({
    id,
    name,
    runtime,
    fifo,
    fd,
    pidInfo: { pid, startTime, ppid, pStartTime },
    ...(goneReason === undefined ? {} : { goneReason }),
  });
}
