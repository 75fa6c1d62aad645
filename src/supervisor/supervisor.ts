/**
 * The supervisor (seed `new_supervisor`, `container_supervisor_add_exit_monitor`): one epoll
 * loop watches every armed exit FIFO and decodes each exit once, reporting it through a
 * callback; it knows nothing of the store or the collector.
 *
 * A FIFO only hangs up after a writer connected and left. When no writer holds the FIFO at the
 * moment it is armed (the shim is late, died before opening it, or was gone before the read
 * end was reopened), a pidfd of the shim (or of the container when it has no shim) joins the
 * same loop until a writer shows up, so that exit is still noticed. In the usual order
 * (create-fifo, shim opens the write end, monitor) a container costs one descriptor.
 *
 * @module
 */

import type { ExitStatus, PidInfo } from "../types.ts";
import { Errno, SysError } from "../sys/errno.ts";
import { EventLoop } from "../sys/event_loop.ts";
import * as libc from "../sys/libc.ts";
import { isValidPid, readProcStat } from "../sys/proc.ts";
import { decodeExitStatus, STATUS_SIZE, unknownExit } from "./exit_status.ts";

/** A container to watch. */
export interface ExitMonitor {
  /** Container id. */
  id: string;
  /** Container name (for logs). */
  name: string;
  /** Runtime name. */
  runtime: string;
  /** The exit FIFO's path. */
  fifo: string;
  /** Its read end, opened with openExitFifo; the supervisor owns it from now on. */
  fd: number;
  /** The container's processes. */
  pidInfo: PidInfo;
  /**
   * When set, and the watched process is already gone when the FIFO is armed with nothing in
   * it and no writer, the exit is decided at once as unknown with this reason (used on
   * restore: "exited while reaperd was down") instead of after the grace period.
   */
  goneReason?: string;
}

/** An exit the supervisor decoded. */
export interface ExitReport {
  id: string;
  name: string;
  runtime: string;
  fifo: string;
  pidInfo: PidInfo;
  exit: ExitStatus;
  /**
   * Called by the daemon once the exit is durable (recorded, or found already recorded), so the
   * status may now be consumed from the FIFO and its read end let go. Until then nothing that
   * would lose the status for the next daemon is done.
   */
  acknowledge?: () => void;
}

/** How the supervisor is wired. */
export interface SupervisorOptions {
  /** Receives each exit, once. A throw is passed to onError. */
  onExit: (report: ExitReport) => void;
  /** Receives errors the loop survived. */
  onError?: (error: unknown) => void;
  /**
   * How long to wait for the FIFO after the watched process is gone before the exit is
   * decided as unknown (the shim writes then exits, so its status normally comes first).
   */
  processGoneGraceMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const READ_CHUNK = 64;
const REPORTED_MEMORY = 65_536;

interface Watched {
  monitor: ExitMonitor;
  /** First bytes received (enough to describe garbage). */
  bytes: Uint8Array<ArrayBuffer>;
  total: number;
  pidfd: number | null;
  /** Which process the pidfd names: "shim" or "container". */
  pidfdOf: string;
  graceTimer: ReturnType<typeof setTimeout> | null;
}

/** The supervisor; start it, add monitors, stop it to release every fd. */
export class Supervisor {
  readonly #loop: EventLoop;
  readonly #onExit: (report: ExitReport) => void;
  readonly #onError: (error: unknown) => void;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #byId = new Map<string, Watched>();
  /** Recently reported (id, pid, start time) keys: an exit is reported once. */
  readonly #reported = new Set<string>();
  readonly #readBuf = new Uint8Array(READ_CHUNK);

  constructor(options: SupervisorOptions) {
    this.#onExit = options.onExit;
    this.#onError = options.onError ?? (() => {});
    this.#graceMs = options.processGoneGraceMs ?? 2000;
    this.#now = options.now ?? Date.now;
    this.#loop = new EventLoop(this.#onError);
  }

  /** Starts the event loop. */
  start(): void {
    this.#loop.start();
  }

  /** Stops the loop and closes every FIFO and pidfd it holds. Nothing is reported. */
  async stop(): Promise<void> {
    for (const w of [...this.#byId.values()]) this.#release(w);
    await this.#loop.stop();
  }

  /** How many containers are monitored. */
  get size(): number {
    return this.#byId.size;
  }

  /** Whether a container is monitored now. */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /**
   * Starts watching a container's exit FIFO. The supervisor owns `monitor.fd` from now on,
   * also when this throws. Adding the same (id, pid, start time) again while it is watched is
   * a no-op that closes the extra fd; an id watched with another pid is an error, and so is
   * an exit already reported.
   */
  add(monitor: ExitMonitor): void {
    const { id, pidInfo } = monitor;
    const existing = this.#byId.get(id);
    if (existing !== undefined) {
      libc.close(monitor.fd);
      const same = existing.monitor.pidInfo.pid === pidInfo.pid &&
        existing.monitor.pidInfo.startTime === pidInfo.startTime;
      if (same) return;
      throw new Error(
        `container ${id} is already monitored with pid ${existing.monitor.pidInfo.pid}`,
      );
    }
    if (this.#reported.has(reportKey(id, pidInfo))) {
      libc.close(monitor.fd);
      throw new Error(`the exit of container ${id} (pid ${pidInfo.pid}) was already reported`);
    }
    const watched: Watched = {
      monitor,
      bytes: new Uint8Array(STATUS_SIZE + 1),
      total: 0,
      pidfd: null,
      pidfdOf: "",
      graceTimer: null,
    };
    try {
      this.#loop.add(monitor.fd, (events) => this.#onFifoReady(watched, events));
    } catch (e) {
      libc.close(monitor.fd);
      throw e;
    }
    this.#byId.set(id, watched);
    // Anything already waiting is decoded now; with no writer, watch the process instead.
    if (this.#drain(watched, false) === "no-writer" && this.#byId.has(id)) {
      this.#watchProcess(watched);
    }
  }

  /** Stops watching a container without reporting anything, closing its fds. */
  remove(id: string): boolean {
    const w = this.#byId.get(id);
    if (w === undefined) return false;
    this.#release(w);
    return true;
  }

  #watchProcess(w: Watched): void {
    const { pid, startTime, ppid, pStartTime } = w.monitor.pidInfo;
    const [target, start, label] = isValidPid(ppid) && pStartTime > 0
      ? [ppid, pStartTime, "shim"]
      : [pid, startTime, "container"];
    if (!isValidPid(target)) return;
    let fd: number;
    try {
      fd = libc.pidfdOpen(target);
    } catch (e) {
      // ENOENT: the pid now names a thread of another process (pid reused): ours is gone.
      if (e instanceof SysError && (e.errno === Errno.ESRCH || e.errno === Errno.ENOENT)) {
        this.#goneAtArm(w, label);
        return;
      }
      if (e instanceof SysError && e.errno === Errno.ENOSYS) return;
      throw e;
    }
    // The pidfd names whoever has the pid now: make sure that is still our process.
    if (readProcStat(target)?.startTime !== start) {
      libc.close(fd);
      this.#goneAtArm(w, label);
      return;
    }
    w.pidfd = fd;
    w.pidfdOf = label;
    this.#loop.add(fd, () => {
      this.#loop.remove(fd);
      this.#processGone(w, label);
    });
  }

  #goneAtArm(w: Watched, label: string): void {
    const reason = w.monitor.goneReason;
    if (reason === undefined) this.#processGone(w, label);
    else this.#finish(w, unknownExit(reason, this.#now()));
  }

  #processGone(w: Watched, label: string): void {
    if (w.graceTimer !== null || !this.#byId.has(w.monitor.id)) return;
    w.graceTimer = setTimeout(() => {
      w.graceTimer = null;
      if (!this.#byId.has(w.monitor.id)) return;
      // Whatever is in the pipe still counts; only then decide the status is lost.
      this.#drain(w, false);
      if (!this.#byId.has(w.monitor.id)) return;
      const who = label === "shim" ? `shim (pid ${w.monitor.pidInfo.ppid})` : "container process";
      const got = w.total === 0 ? "without writing a status" : `after only ${w.total} bytes`;
      this.#finish(w, unknownExit(`${who} exited ${got} and the FIFO never hung up`, this.#now()));
    }, this.#graceMs);
  }

  #onFifoReady(w: Watched, events: number): void {
    this.#drain(w, true);
    if (this.#byId.has(w.monitor.id) && (events & libc.EPOLL.ERR) !== 0) {
      this.#finish(w, unknownExit("error condition on the exit FIFO", this.#now()));
    }
  }

  /**
   * Reads all that is there; reports the exit as soon as it is decided. A read of 0 means no
   * writer holds the FIFO now; it is a hang-up only when epoll said so, since a writer that
   * never connected leaves the same end of file behind.
   */
  #drain(w: Watched, fromEpoll: boolean): "writer" | "no-writer" | "done" {
    let hungUp = false;
    let writer = true;
    for (;;) {
      let n: number | null;
      try {
        n = libc.read(w.monitor.fd, this.#readBuf);
      } catch (e) {
        this.#finish(
          w,
          unknownExit(`reading the exit FIFO failed: ${(e as Error).message}`, this.#now()),
        );
        return "done";
      }
      if (n === null) break;
      if (n === 0) {
        hungUp = fromEpoll;
        writer = false;
        break;
      }
      const room = w.bytes.length - w.total;
      if (room > 0) w.bytes.set(this.#readBuf.subarray(0, Math.min(n, room)), w.total);
      w.total += n;
      if (w.total > STATUS_SIZE) break;
    }
    const exit = decodeExitStatus(
      w.bytes.subarray(0, Math.min(w.total, w.bytes.length)),
      w.total,
      hungUp,
      this.#now(),
    );
    if (exit === null) return writer ? "writer" : "no-writer";
    this.#finish(w, exit);
    return "done";
  }

  #finish(w: Watched, exit: ExitStatus): void {
    if (!this.#byId.has(w.monitor.id)) return;
    this.#release(w);
    const { id, name, runtime, fifo, pidInfo } = w.monitor;
    this.#reported.add(reportKey(id, pidInfo));
    if (this.#reported.size > REPORTED_MEMORY) {
      // Oldest first: a Set iterates in insertion order.
      this.#reported.delete(this.#reported.values().next().value!);
    }
    try {
      this.#onExit({ id, name, runtime, fifo, pidInfo, exit });
    } catch (e) {
      this.#onError(e);
    }
  }

  #release(w: Watched): void {
    this.#byId.delete(w.monitor.id);
    if (w.graceTimer !== null) clearTimeout(w.graceTimer);
    w.graceTimer = null;
    this.#loop.remove(w.monitor.fd);
    libc.close(w.monitor.fd);
    if (w.pidfd !== null) {
      this.#loop.remove(w.pidfd);
      libc.close(w.pidfd);
      w.pidfd = null;
    }
  }
}

function reportKey(id: string, p: PidInfo): string {
  return `${id}\0${p.pid}\0${p.startTime}`;
}
