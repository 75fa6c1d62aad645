/**
 * The supervisor (seed `new_supervisor`, `container_supervisor_add_exit_monitor`): one epoll
 * loop watches every armed exit FIFO and decodes each exit once, reporting it through a
 * callback; it knows nothing of the store or the collector.
 *
 * A FIFO only hangs up after a writer connected and left. When no writer holds the FIFO at the
 * moment it is armed (the shim is late, died before opening it, or was gone before the read
 * end was reopened), a pidfd of the shim (or of the container when it has no shim) joins the
 * same loop until a writer shows up, so that exit is still noticed; for a container just
 * monitored it is opened only if no writer came within half a second, since a shim started right
 * after monitor opens the FIFO within milliseconds. Either way a container costs one
 * descriptor in the usual case.
 *
 * A status is never consumed before it is durable. The FIFO is read with tee(2) into a private
 * pipe, which copies its bytes and leaves them in the FIFO; the exit is reported from the copy,
 * and only when the daemon acknowledges the report (the exit is committed) are the bytes read
 * out of the FIFO and its read end closed. A daemon killed in between leaves the status in the
 * FIFO, whose read end the service manager may keep (see `onDone`), for the next daemon.
 *
 * @module
 */

import type { ExitStatus, PidInfo } from "../types.ts";
import { Errno, SysError } from "../sys/errno.ts";
import { EventLoop } from "../sys/event_loop.ts";
import * as libc from "../sys/libc.ts";
import { isValidPid, readProcStat } from "../sys/proc.ts";
import { getLogger } from "../log.ts";
import { decodeExitStatus, describeBytes, STATUS_SIZE, unknownExit } from "./exit_status.ts";
import { type Consumed, consumeFifo, FifoPeek } from "./fifo_peek.ts";

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
  /**
   * Told when a read end given to {@linkcode Supervisor.add} is closed for good: its status
   * was consumed after the report was acknowledged, the container was removed, or add() did
   * not take it. Not told when the supervisor stops (a read end kept elsewhere must outlive
   * this process then).
   */
  onDone?: (fifo: string) => void;
  /**
   * How long a FIFO armed before any writer opened it waits for one before the process watch
   * (a pidfd) is opened (default 500 ms): a shim started right after monitor opens the FIFO
   * within milliseconds, and a pidfd then would cost a descriptor and a system call for nothing.
   */
  processWatchDelayMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const REPORTED_MEMORY = 65_536;

const log = getLogger("supervisor");

interface Watched {
  monitor: ExitMonitor;
  /** Bytes the FIFO held at the last look. */
  total: number;
  pidfd: number | null;
  /** Which process the pidfd names: "shim" or "container". */
  pidfdOf: string;
  graceTimer: ReturnType<typeof setTimeout> | null;
  /**
   * Whether the loop reports the FIFO only on new bytes or a hang-up (it holds part of a
   * status).
   */
  onlyOnNew: boolean;
}

/** The supervisor; start it, add monitors, stop it to release every fd. */
export class Supervisor {
  readonly #loop: EventLoop;
  readonly #onExit: (report: ExitReport) => void;
  readonly #onError: (error: unknown) => void;
  readonly #graceMs: number;
  readonly #watchDelayMs: number;
  /** FIFOs armed with no writer, oldest first, with when their process watch is due. */
  readonly #noWriterYet: Array<{ w: Watched; due: number }> = [];
  #noWriterTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #now: () => number;
  readonly #byId = new Map<string, Watched>();
  /** Recently reported (id, pid, start time) keys: an exit is reported once. */
  readonly #reported = new Set<string>();
  /**
   * Copies the FIFO being drained, keeping its first bytes. One for all: a drain copies and
   * decodes them at once, and a buffer per container would cost a typed array and its backing
   * store for each of ten thousand FIFOs.
   */
  readonly #peek = new FifoPeek();
  readonly #consumeBuf = new Uint8Array(4096);
  readonly #onDone: (fifo: string) => void;
  /** Reported, waiting for acknowledgement: their read ends stay open and unconsumed. */
  readonly #awaiting = new Set<Watched>();
  #stopped = false;

  constructor(options: SupervisorOptions) {
    this.#onExit = options.onExit;
    this.#onError = options.onError ?? (() => {});
    this.#graceMs = options.processGoneGraceMs ?? 2000;
    this.#watchDelayMs = options.processWatchDelayMs ?? 500;
    this.#now = options.now ?? Date.now;
    this.#onDone = options.onDone ?? (() => {});
    this.#loop = new EventLoop(this.#onError);
  }

  /** Starts the event loop. */
  start(): void {
    this.#peek.open();
    this.#loop.start();
  }

  /**
   * Stops the loop and closes every FIFO and pidfd it holds, consuming nothing: a status
   * reported but not yet acknowledged stays in its FIFO. A complete status already waiting in
   * a FIFO the loop has not turned to yet is reported first: closing the read end would
   * discard it, and the next start could only say the container exited while reaperd was down.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#noWriterTimer !== null) clearTimeout(this.#noWriterTimer);
    this.#noWriterYet.length = 0;
    for (const w of [...this.#byId.values()]) this.#drain(w, 0);
    for (const w of [...this.#byId.values()]) this.#release(w);
    for (const w of this.#awaiting) libc.close(w.monitor.fd);
    this.#awaiting.clear();
    this.#peek.close();
    await this.#loop.stop();
  }

  /** How many reported exits wait for their acknowledgement. */
  get awaitingAcknowledgement(): number {
    return this.#awaiting.size;
  }

  /** How many containers are monitored. */
  get size(): number {
    return this.#byId.size;
  }

  /** The epoll loop's turns so far; see {@linkcode Supervisor.pokeLoop}. */
  get loopTurns(): number {
    return this.#loop.turns;
  }

  /** Wakes the epoll loop once, so that {@linkcode Supervisor.loopTurns} shows it alive. */
  pokeLoop(): void {
    this.#loop.poke();
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
      this.#closeUnwatched(monitor);
      const same = existing.monitor.pidInfo.pid === pidInfo.pid &&
        existing.monitor.pidInfo.startTime === pidInfo.startTime;
      if (same) return;
      throw new Error(
        `container ${id} is already monitored with pid ${existing.monitor.pidInfo.pid}`,
      );
    }
    if (this.#reported.has(reportKey(id, pidInfo))) {
      this.#closeUnwatched(monitor);
      throw new Error(`the exit of container ${id} (pid ${pidInfo.pid}) was already reported`);
    }
    const watched: Watched = {
      monitor,
      total: 0,
      pidfd: null,
      pidfdOf: "",
      graceTimer: null,
      onlyOnNew: false,
    };
    try {
      this.#loop.add(monitor.fd, (events) => this.#onFifoReady(watched, events));
    } catch (e) {
      this.#closeUnwatched(monitor);
      throw e;
    }
    this.#byId.set(id, watched);
    // Anything already waiting is decoded now; with no writer, watch the process instead: at
    // once for a container restored after a restart (its process may be long gone), after a
    // short wait for a shim that may be opening the FIFO right now.
    const found = this.#drain(watched, 0);
    if (found === "no-writer" && this.#byId.has(id)) {
      if (monitor.goneReason !== undefined) this.#watchProcess(watched);
      else this.#watchProcessLater(watched);
    }
    if (found === "partial") this.#waitForRest(watched);
  }

  /** Closes a read end handed to add() and never watched: it is done with. */
  #closeUnwatched(monitor: ExitMonitor): void {
    libc.close(monitor.fd);
    this.#onDone(monitor.fifo);
  }

  /**
   * Stops watching a container without reporting anything, or lets go of its reported exit
   * that was never acknowledged (a refused record would otherwise hold its read end for the
   * life of the process); either way its read end is closed and done with.
   */
  remove(id: string): boolean {
    const w = this.#byId.get(id);
    if (w !== undefined) {
      this.#release(w);
      this.#onDone(w.monitor.fifo);
      return true;
    }
    for (const waiting of this.#awaiting) {
      if (waiting.monitor.id !== id) continue;
      this.#awaiting.delete(waiting);
      libc.close(waiting.monitor.fd);
      this.#onDone(waiting.monitor.fifo);
      return true;
    }
    return false;
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

  /** Opens the process watch of `w` after the delay, unless a writer or its exit came first. */
  #watchProcessLater(w: Watched): void {
    this.#noWriterYet.push({ w, due: performance.now() + this.#watchDelayMs });
    this.#armNoWriterTimer();
  }

  #armNoWriterTimer(): void {
    const next = this.#noWriterYet[0];
    // One timer at a time: an add() from a callback inside the timer may have armed it already.
    if (next === undefined || this.#stopped || this.#noWriterTimer !== null) return;
    this.#noWriterTimer = setTimeout(() => {
      this.#noWriterTimer = null;
      const now = performance.now();
      while (this.#noWriterYet.length > 0 && this.#noWriterYet[0]!.due <= now) {
        const { w } = this.#noWriterYet.shift()!;
        // Gone meanwhile (exited, removed), or watched already: nothing to do.
        if (this.#byId.get(w.monitor.id) !== w || w.pidfd !== null || w.onlyOnNew) continue;
        try {
          const found = this.#drain(w, 0);
          if (this.#byId.get(w.monitor.id) !== w) continue;
          if (found === "no-writer") this.#watchProcess(w);
          else if (found === "partial") this.#waitForRest(w);
        } catch (e) {
          this.#onError(e);
        }
      }
      this.#armNoWriterTimer();
    }, Math.max(0, next.due - performance.now()));
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
      this.#drain(w, 0);
      if (!this.#byId.has(w.monitor.id)) return;
      const who = label === "shim" ? `shim (pid ${w.monitor.pidInfo.ppid})` : "container process";
      const got = w.total === 0 ? "without writing a status" : `after only ${w.total} bytes`;
      this.#finish(w, unknownExit(`${who} exited ${got} and the FIFO never hung up`, this.#now()));
    }, this.#graceMs);
  }

  #onFifoReady(w: Watched, events: number): void {
    const found = this.#drain(w, events);
    if (!this.#byId.has(w.monitor.id)) return;
    if ((events & libc.EPOLL.ERR) !== 0) {
      this.#finish(w, unknownExit("error condition on the exit FIFO", this.#now()));
    } else if (found === "partial") {
      this.#waitForRest(w);
    }
  }

  /**
   * Part of a status sits in the FIFO, unconsumed, so the level-triggered loop would report it
   * again at once, forever: from now on the loop reports the FIFO only when more bytes come or
   * its writer goes. A writer that never finishes is caught by the process watch.
   */
  #waitForRest(w: Watched): void {
    if (w.onlyOnNew) return;
    w.onlyOnNew = true;
    this.#loop.onlyOnNew(w.monitor.fd);
    if (w.pidfd === null) this.#watchProcess(w);
  }

  /**
   * Copies what the FIFO holds (tee, nothing consumed) and reports the exit as soon as it is
   * decided. `events` are the epoll bits (0 when not called from the loop): the FIFO hung up
   * only when epoll said so, since a writer that never connected looks the same to tee.
   */
  #drain(w: Watched, events: number): "writer" | "no-writer" | "partial" | "done" {
    let copied: number | null;
    try {
      copied = this.#peek.peek(w.monitor.fd);
    } catch (e) {
      this.#finish(
        w,
        unknownExit(`reading the exit FIFO failed: ${(e as Error).message}`, this.#now()),
      );
      return "done";
    }
    if (copied === null) return "writer";
    w.total = copied;
    const bytes = this.#peek.head;
    const hungUp = (events & libc.EPOLL.HUP) !== 0;
    const exit = decodeExitStatus(
      bytes.subarray(0, Math.min(w.total, bytes.length)),
      w.total,
      hungUp,
      this.#now(),
    );
    if (exit === null) return copied === 0 ? "no-writer" : "partial";
    if (w.total > STATUS_SIZE) {
      log.warn("{fifo}: {extra} more bytes followed the status (a second writer?)", {
        fifo: w.monitor.fifo,
        extra: w.total - STATUS_SIZE,
      });
    }
    this.#finish(w, exit);
    return "done";
  }

  #finish(w: Watched, exit: ExitStatus): void {
    if (!this.#byId.has(w.monitor.id)) return;
    this.#release(w, false);
    this.#awaiting.add(w);
    const { id, name, runtime, fifo, pidInfo } = w.monitor;
    this.#reported.add(reportKey(id, pidInfo));
    if (this.#reported.size > REPORTED_MEMORY) {
      // Oldest first: a Set iterates in insertion order.
      this.#reported.delete(this.#reported.values().next().value!);
    }
    let acknowledged = false;
    const acknowledge = () => {
      if (acknowledged) return;
      acknowledged = true;
      this.#consume(w);
    };
    try {
      this.#onExit({ id, name, runtime, fifo, pidInfo, exit, acknowledge });
    } catch (e) {
      this.#onError(e);
    }
  }

  /** The exit is durable: read the status out of the FIFO, close it, and say it is done. */
  #consume(w: Watched): void {
    if (!this.#awaiting.delete(w)) return;
    const { fd, fifo } = w.monitor;
    let consumed: Consumed = { count: 0, after: new Uint8Array() };
    try {
      consumed = consumeFifo(fd, this.#consumeBuf);
    } catch (e) {
      this.#onError(e);
    }
    libc.close(fd);
    const { count, after } = consumed;
    if (count > w.total && count > STATUS_SIZE) {
      log.warn("{fifo}: after its status, {count} more bytes arrived: {bytes}", {
        fifo,
        count: count - STATUS_SIZE,
        bytes: describeBytes(after, count - STATUS_SIZE),
      });
    }
    this.#onDone(fifo);
  }

  /** Stops watching; closes the FIFO's read end too unless `closeFifo` is false. */
  #release(w: Watched, closeFifo = true): void {
    this.#byId.delete(w.monitor.id);
    if (w.graceTimer !== null) clearTimeout(w.graceTimer);
    w.graceTimer = null;
    this.#loop.remove(w.monitor.fd);
    if (closeFifo) libc.close(w.monitor.fd);
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
