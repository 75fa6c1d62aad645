/**
 * Registers containers with the daemon the way a container engine does, many at a time:
 * `POST /v1/fifos` (the daemon creates the FIFO and holds its read end) → the shim (here the
 * writer process) opens the write end → `POST /v1/containers`.
 *
 * Every container is named by a pid that no process can have (one above the kernel's
 * `pid_max`) with an explicit start time: to the daemon its init process and its shim are
 * already gone, as they are once a real shim has written the exit status. So cleanup finds
 * nothing alive to SIGKILL and goes on to the runtime calls and the state dir, as after a real
 * exit. (A live pid under another start time is refused by the daemon as a reused pid.)
 *
 * @module
 */

import type { BenchDaemon } from "./_daemon.ts";
import { nowMs } from "./_clock.ts";
import { mapLimit } from "./_stats.ts";
import type { WriterProcess } from "./_writer.ts";

/** Requests in flight while registering. */
export const IN_FLIGHT = 8;
/** Containers whose FIFOs the writer opens with one command. */
const BATCH = 100;

/** The runtime every benchmark container uses (an instant one: /bin/true). */
export const RUNTIME = "fake";

/** A (pid, start time) pair that names no living process. */
export interface GhostIdentity {
  pid: number;
  startTime: number;
}

/** A pid above `pid_max`, which the kernel never hands out, with a made-up start time. */
export function ghostIdentity(): GhostIdentity {
  let pidMax = 4_194_304;
  try {
    pidMax = Number(Deno.readTextFileSync("/proc/sys/kernel/pid_max").trim());
  } catch {
    // Keep the largest default.
  }
  return { pid: pidMax + 1, startTime: 1_000_003 };
}

/** Where a container's state dir is. */
/**
 * The body that names container `id` with the ghost identity, for `POST /v1/containers` or
 * `POST /v1/gc`.
 */
export function ghostBody(
  daemon: BenchDaemon,
  id: string,
  ghost: GhostIdentity,
): Record<string, unknown> {
  return {
    id,
    runtime: RUNTIME,
    stateDir: stateDirOf(daemon, id),
    pid: ghost.pid,
    ppid: ghost.pid,
    startTime: ghost.startTime,
    pStartTime: ghost.startTime,
  };
}

export function stateDirOf(daemon: BenchDaemon, id: string, runtime = RUNTIME): string {
  return `${daemon.stateRoot}/${runtime}/${id}`;
}

/** Per-request times of a registration (ms), filled in when asked for. */
export interface RegisterTimings {
  createFifoMs: number[];
  monitorMs: number[];
}

/** How {@linkcode registerContainers} goes about it. */
export interface RegisterOptions {
  /** Requests in flight ({@linkcode IN_FLIGHT} by default; 1 is one keep-alive client). */
  inFlight?: number;
  /** Where to note each request's time. */
  timings?: RegisterTimings;
  /**
   * Whether to make each runtime root during the registration (true by default); false when
   * {@linkcode makeRuntimeRoots} made them before, so that only the daemon's work is timed.
   */
  makeRoots?: boolean;
  /**
   * One call per container (`POST /v1/containers` with `createFifo: true`, the write end opened
   * after it, as by a shim started after monitor). Each container's shim is this live process
   * (its init is the ghost, as in the two-call way): a container whose processes are all gone
   * and whose FIFO nobody has opened yet would be recorded as lost. Cleanup SIGKILLs the shim.
   * Times go to `monitorMs`.
   */
  oneCall?: GhostIdentity;
}

/**
 * Makes `<stateDir>/<runtime>` of each container ahead of its registration, as an engine has
 * the state dir before it asks for the FIFO.
 */
export function makeRuntimeRoots(daemon: BenchDaemon, ids: readonly string[]): void {
  for (const id of ids) Deno.mkdirSync(`${stateDirOf(daemon, id)}/${RUNTIME}`, { recursive: true });
}

/**
 * Registers `ids` as running containers whose exit FIFO's write end `writer` holds. Also makes
 * `<stateDir>/<runtime>`, the runtime's `--root`, as runc would, so that cleanup really calls
 * the runtime. Resolves to each id's index in the writer.
 */
export async function registerContainers(
  daemon: BenchDaemon,
  writer: WriterProcess,
  ids: readonly string[],
  ghost: GhostIdentity,
  options: RegisterOptions = {},
): Promise<Map<string, number>> {
  const inFlight = options.inFlight ?? IN_FLIGHT;
  const timings = options.timings;
  const makeRoots = options.makeRoots ?? true;
  const index = new Map<string, number>();
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const live = options.oneCall;
    if (live !== undefined) {
      const made = await mapLimit(batch, inFlight, async (id) => {
        const stateDir = stateDirOf(daemon, id);
        const body = {
          id,
          runtime: RUNTIME,
          stateDir,
          pid: ghost.pid,
          startTime: ghost.startTime,
          ppid: live.pid,
          pStartTime: live.startTime,
          createFifo: true,
        };
        const t = nowMs();
        await daemon.call("POST", "/v1/containers", body, 201);
        timings?.monitorMs.push(nowMs() - t);
        if (makeRoots) await Deno.mkdir(`${stateDir}/${RUNTIME}`);
        return `${stateDir}/exit_fifo`;
      });
      const opened = await writer.open(made);
      batch.forEach((id, j) => index.set(id, opened[j]!));
      continue;
    }
    const fifos = await mapLimit(batch, inFlight, async (id) => {
      const stateDir = stateDirOf(daemon, id);
      const t = nowMs();
      const { fifo } = await daemon.call("POST", "/v1/fifos", { stateDir }) as { fifo: string };
      timings?.createFifoMs.push(nowMs() - t);
      if (makeRoots) await Deno.mkdir(`${stateDir}/${RUNTIME}`);
      return fifo;
    });
    const indexes = await writer.open(fifos);
    batch.forEach((id, j) => index.set(id, indexes[j]!));
    await mapLimit(batch, inFlight, async (id) => {
      const t = nowMs();
      await daemon.call("POST", "/v1/containers", ghostBody(daemon, id, ghost), 201);
      timings?.monitorMs.push(nowMs() - t);
    });
  }
  return index;
}
