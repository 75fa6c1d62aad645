/**
 * What the daemon lets in, beyond the shape of a request (validate.ts): the container's
 * identity as identity.ts defines it, checked against this daemon's config and the live
 * system. A state dir must be exactly the container's own; a runtime must be configured; a
 * process is named by (pid, start time), and a start time is taken from /proc only where that
 * cannot adopt somebody else's process. Each refusal is an {@linkcode ApiError} 400 that says
 * what to send instead.
 *
 * @module
 */

import type { Config } from "../config.ts";
import { errorMessage } from "../error_message.ts";
import type { Collector } from "../gc/collector.ts";
import { idProblem, StateLayout } from "../identity.ts";
import { type ProcStat, readProcStat } from "../sys/proc.ts";
import { ApiError, type GcAddRequest, type MonitorRequest } from "./api.ts";

/** The start times a request's processes are recorded with; 0 = identity unknown. */
export interface AdmittedIdentity {
  startTime: number;
  pStartTime: number;
}

/** A monitor request let in: its identity, and whether its process had already exited. */
export interface AdmittedMonitor extends AdmittedIdentity {
  /** The pid was gone or a zombie when /proc was read (the one read admission made). */
  exited: boolean;
}

/** One process of a request: which field, its pid, the start time given, and the flag for it. */
interface Named {
  field: "pid" | "ppid";
  pid: number;
  given: number | undefined;
  flag: "--start-time" | "--pstart-time";
}

/** The daemon's admission rules, for one config. */
export class Admission {
  /** Where state dirs are. */
  readonly layout: StateLayout;
  readonly #runtimes: Config["runtimes"];
  readonly #readStat: (pid: number) => ProcStat | null;

  /** `readStat` reads a process's /proc stat (a test may swap it). */
  constructor(
    config: Pick<Config, "stateRoot" | "stateDirPattern" | "runtimes">,
    readStat: (pid: number) => ProcStat | null = readProcStat,
  ) {
    this.layout = new StateLayout(config.stateRoot, config.stateDirPattern);
    this.#runtimes = config.runtimes;
    this.#readStat = readStat;
  }

  /** Refuses an id that is not one (ids in a URL path are checked by validate.ts as well). */
  id(id: string): void {
    const problem = idProblem(id);
    if (problem !== null) throw new ApiError(400, `id ${problem}`);
  }

  /** create-fifo: the dir must be some container's state dir, with no symlink on the way. */
  fifoDir(stateDir: string): void {
    const parts = this.layout.parse(stateDir);
    if (typeof parts === "string") throw new ApiError(400, parts);
    this.#noSymlink(stateDir);
  }

  /**
   * monitor: the container's id, runtime and state dir, and the start times to record. A
   * process that is gone without a start time given is accepted with its identity unknown
   * only when `fifoHeld` (create-fifo holds the read end, so the exit is in the FIFO);
   * otherwise there would be nothing to wait for, and the request is refused.
   */
  monitor(req: MonitorRequest, fifoHeld: boolean): AdmittedMonitor {
    // With the read end held, monitor makes and opens nothing by path: create-fifo's walk was
    // the one that counted, and cleanup resolves every path without following links anyway.
    this.#container(req.id, req.runtime, req.stateDir, !fifoHeld);
    const pid = { field: "pid", pid: req.pid, given: req.startTime, flag: "--start-time" } as const;
    const { startTime, exited } = this.#monitored(pid, fifoHeld);
    const pStartTime = req.ppid === 0 ? 0 : this.#monitored(
      { field: "ppid", pid: req.ppid, given: req.pStartTime, flag: "--pstart-time" },
      fifoHeld,
    ).startTime;
    return { startTime, pStartTime, exited };
  }

  /**
   * gc add: the container's identity and its state dir (the layout's when none is given). A
   * live pid is never adopted by whatever holds it now: without its start time it is refused.
   */
  gcAdd(req: GcAddRequest): AdmittedIdentity & { stateDir: string } {
    const stateDir = req.stateDir ?? this.layout.dirOf(req.runtime, req.id);
    this.#container(req.id, req.runtime, stateDir);
    const startTime = this.#handedOver({
      field: "pid",
      pid: req.pid,
      given: req.startTime,
      flag: "--start-time",
    });
    const pStartTime = req.ppid === 0 ? 0 : this.#handedOver({
      field: "ppid",
      pid: req.ppid,
      given: req.pStartTime,
      flag: "--pstart-time",
    });
    return { stateDir: stateDir.replace(/\/+$/, ""), startTime, pStartTime };
  }

  #container(id: string, runtime: string, stateDir: string, walk = true): void {
    this.id(id);
    if (!Object.hasOwn(this.#runtimes, runtime)) {
      const known = Object.keys(this.#runtimes).sort().join(", ") || "none";
      throw new ApiError(400, `unknown runtime ${JSON.stringify(runtime)} (configured: ${known})`);
    }
    const problem = this.layout.problem(stateDir, runtime, id);
    if (problem !== null) throw new ApiError(400, problem);
    if (walk) this.#noSymlink(stateDir);
  }

  /**
   * The start time to watch a process by, and whether it has exited: a live process with
   * another start time is refused, so a process found is the one named.
   */
  #monitored(p: Named, fifoHeld: boolean): { startTime: number; exited: boolean } {
    refuseInit(p);
    const now = this.#readStat(p.pid);
    const exited = now === null || now.state === "Z";
    if (p.given !== undefined) {
      if (now !== null && now.startTime !== p.given) {
        throw new ApiError(
          400,
          `${p.field} ${p.pid} is alive with start time ${now.startTime}, not ${p.given}: ` +
            "that is another process (a reused pid)",
        );
      }
      return { startTime: p.given, exited };
    }
    if (now !== null) return { startTime: now.startTime, exited };
    if (fifoHeld) return { startTime: 0, exited };
    throw new ApiError(
      400,
      `${p.field} ${p.pid} does not exist; give ${p.flag} to monitor it anyway`,
    );
  }

  /** The start time a container handed to GC is cleaned by. */
  #handedOver(p: Named): number {
    refuseInit(p);
    if (p.given !== undefined) return p.given;
    const now = this.#readStat(p.pid);
    if (now === null) return 0;
    throw new ApiError(
      400,
      `${p.field} ${p.pid} is alive: pass ${p.flag} (the container's process's start time, ` +
        "field 22 of /proc/<pid>/stat) so that reaperd never kills whoever holds the pid now",
    );
  }

  /**
   * Refuses a state dir with a symlink or non-directory between the root and it: creating the
   * dir, its FIFO, or opening the FIFO would otherwise go through the link to wherever it
   * points, and cleanup would then refuse to remove it forever.
   */
  #noSymlink(stateDir: string): void {
    let path = this.layout.root;
    for (const part of stateDir.slice(path.length).split("/")) {
      if (part === "") continue;
      path = `${path}/${part}`;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw new ApiError(
          400,
          `state dir ${stateDir}: cannot inspect ${path}: ${errorMessage(e)}`,
        );
      }
      if (info.isSymlink) {
        throw new ApiError(400, `state dir ${stateDir}: ${path} is a symlink; refusing`);
      }
      if (!info.isDirectory) {
        throw new ApiError(400, `state dir ${stateDir}: ${path} is not a directory`);
      }
    }
  }
}

/** Init is never a container's process or shim, and cleanup signals both. */
function refuseInit(p: Named): void {
  if (p.pid === 1) {
    throw new ApiError(400, `${p.field} 1 is init: never a container's process or shim`);
  }
}

/**
 * Refuses a state dir whose old run is still being cleaned (stopping or in GC), or a dir
 * inside it: the old run's cleanup would remove it under the new run.
 */
export function checkNotBeingCleaned(
  collector: Pick<Collector, "ownerOf">,
  stateDir: string,
): void {
  const owner = collector.ownerOf(stateDir);
  if (owner === null) return;
  throw new ApiError(
    409,
    `state dir ${stateDir} is still being cleaned up after container ${owner} ` +
      `(see reaperd gc status ${owner}); try again once its cleanup has finished`,
  );
}
