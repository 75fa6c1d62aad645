/**
 * reaperd as a library: the seed's interface (iSulad's supervisor and GC modules) for programs
 * that embed it instead of talking to the daemon's socket.
 *
 * | seed (C) | here |
 * | --- | --- |
 * | `new_supervisor()` | `new Supervisor({ onExit }).start()` |
 * | `exit_fifo_name(state_path)` | {@linkcode exitFifoName} |
 * | `container_exit_fifo_create(state_path)` | {@linkcode createExitFifo} |
 * | `container_exit_fifo_open(fifo)` | {@linkcode openExitFifo} |
 * | `container_supervisor_add_exit_monitor(fd, pid_info, name, runtime)` | `supervisor.add({ fd, pidInfo, name, runtime, … })` |
 * | `new_gchandler()` / `gc_restore()` / `start_gchandler()` | `new Collector({ store, cleaner })`, `restore()`, `start()` |
 * | `gc_add_container(id, runtime, pid_info)` | `collector.add({ id, runtime, … })` |
 * | `gc_is_gc_progress(id)` | `collector.isInProgress(id)` |
 *
 * @example Watch one container's exit FIFO
 * ```ts ignore
 * import { createExitFifo, openExitFifo, Supervisor } from "./mod.ts";
 * const supervisor = new Supervisor({ onExit: (r) => console.log(r.id, r.exit.reason) });
 * supervisor.start();
 * const fifo = createExitFifo("/var/run/isulad/runc/c1");
 * supervisor.add({
 *   id: "c1", name: "c1", runtime: "runc", fifo, fd: openExitFifo(fifo),
 *   pidInfo: { pid: 4242, startTime: 98072004, ppid: 4240, pStartTime: 98072003 },
 * });
 * ```
 *
 * @module
 */

export * from "./types.ts";
export {
  createExitFifo,
  EXIT_FIFO,
  ExitFifoError,
  exitFifoName,
  openExitFifo,
} from "./supervisor/exit_fifo.ts";
export { decodeExitStatus, encodeExitStatus } from "./supervisor/exit_status.ts";
export { HeldFifos } from "./supervisor/held_fifos.ts";
export {
  type ExitMonitor,
  type ExitReport,
  Supervisor,
  type SupervisorOptions,
} from "./supervisor/supervisor.ts";
export { Store, type StoreOptions } from "./store/store.ts";
export * from "./store/events.ts";
export { ConflictError, NotFoundError, StoreError, StoreUnavailableError } from "./store/errors.ts";
export { Collector, type CollectorOptions } from "./gc/collector.ts";
export type { Cleaner, CleanupOutcome } from "./gc/cleaner.ts";
export { RuntimeCleaner, type RuntimeCleanerOptions } from "./runtime/cleaner.ts";
export { isAlive, readProcStat } from "./sys/proc.ts";
export { signalProcess } from "./sys/signal.ts";
export { ReaperService } from "./daemon/service.ts";
export { serve } from "./daemon/serve.ts";
export type { ReaperApi } from "./daemon/api.ts";
