/**
 * Exit FIFO read ends kept alive across a crash or restart of the daemon, in the service
 * manager's file descriptor store.
 *
 * Every read end the daemon opens (`create-fifo`, `monitor`, restore) is also sent to the
 * manager under a name that maps back to its FIFO. While the daemon is down the manager's copy
 * keeps the FIFO open for reading, so a shim's status write succeeds and waits in the pipe
 * instead of failing with EPIPE; at the next start the copies come back as fds 3…, and restore
 * adopts them instead of reopening the FIFOs. A read end is removed from the store once it is
 * done with: its status consumed after the exit was durable, or it was let go for good.
 *
 * Names: `<runtime>/<id>`, the state dir relative to the state root, when that fits the
 * manager's alphabet and length; otherwise `#` and the SHA-256 of the FIFO's path, which is
 * matched back through the fd's own path (`/proc/self/fd`).
 *
 * Without `$NOTIFY_SOCKET` nothing is sent, and only fds handed back are adopted.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Logger } from "../log.ts";
import type { ContainerRecord } from "../types.ts";
import { EXIT_FIFO, openExitFifo } from "../supervisor/exit_fifo.ts";
import type { HeldFifos } from "../supervisor/held_fifos.ts";
import { FdStoreSocket, isValidFdName } from "../sys/fd_store.ts";
import * as libc from "../sys/libc.ts";
import type { ListenFd } from "../sys/listen_fds.ts";
import { errorMessage } from "../error_message.ts";

const HASHED = "#";
/** Longest readable name; longer state dirs are hashed. */
const READABLE_MAX = 200;

/** The fd store name of the FIFO `fifo` for a daemon whose state root is `stateRoot`. */
export function fdNameOf(stateRoot: string, fifo: string): string {
  const root = `${stateRoot.replace(/\/+$/, "")}/`;
  const suffix = `/${EXIT_FIFO}`;
  if (fifo.startsWith(root) && fifo.endsWith(suffix)) {
    const rel = fifo.slice(root.length, -suffix.length);
    if (
      rel.length > 0 && rel.length <= READABLE_MAX && !rel.startsWith(HASHED) &&
      /^[A-Za-z0-9_.+=@-]+(\/[A-Za-z0-9_.+=@-]+)*$/.test(rel) && isValidFdName(rel)
    ) {
      return rel;
    }
  }
  return HASHED + createHash("sha256").update(fifo).digest("hex");
}

/** The FIFO a readable name stands for, or null for a hashed (or foreign) name. */
export function fifoOfName(stateRoot: string, name: string): string | null {
  if (name.startsWith(HASHED) || name === "unknown" || name.split("/").includes("..")) return null;
  const fifo = `${stateRoot.replace(/\/+$/, "")}/${name}/${EXIT_FIFO}`;
  return fdNameOf(stateRoot, fifo) === name ? fifo : null;
}

/** The path an open fd names now ("… (deleted)" once unlinked), or null. */
function pathOfFd(fd: number): string | null {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/** Where the store's records come from during restore. */
export interface RestoreLookup {
  /** The record of a container id, or null. */
  get(id: string): Promise<ContainerRecord | null>;
}

/** What {@linkcode FifoReadEnds.settle} did with the fds restore did not take. */
export interface SettleResult {
  /** Re-held as if `create-fifo` had just been called (no record yet). */
  held: number;
  /** Read out and closed: their exit was already durable, or their FIFO is gone. */
  discarded: number;
}

/** What {@linkcode FifoReadEnds} asks of the manager ({@linkcode FdStoreSocket}). */
export interface FdStoreRequests {
  store(name: string, fd: number): void;
  remove(name: string): void;
}

/** Options of {@linkcode FifoReadEnds}. */
export interface FifoReadEndsOptions {
  stateRoot: string;
  /** The manager's socket; null when not run by a manager with an fd store. */
  socket: FdStoreRequests | null;
  /** Fds handed back at start. */
  handedBack?: readonly ListenFd[];
  log: Logger;
}

/** The daemon's FIFO read ends as the fd store sees them. */
export class FifoReadEnds {
  readonly #stateRoot: string;
  readonly #socket: FdStoreRequests | null;
  readonly #log: Logger;
  /** Handed back at start and not taken yet, by name. */
  readonly #handedBack = new Map<string, number>();
  /**
   * Names the manager holds a copy under (sent by this daemon or handed back), with how many
   * of the daemon's own read ends of that FIFO are open: the copy is removed when the last
   * one is done with.
   */
  readonly #kept = new Map<string, number>();

  constructor(options: FifoReadEndsOptions) {
    this.#stateRoot = options.stateRoot;
    this.#socket = options.socket;
    this.#log = options.log;
    for (const { fd, name } of options.handedBack ?? []) {
      if (this.#handedBack.has(name) || name === "unknown") {
        // The manager drops duplicates itself; one read end of a FIFO is as good as another.
        this.#log.warn("closing fd {fd} handed back as {name}: not needed", { fd, name });
        libc.close(fd);
        continue;
      }
      this.#handedBack.set(name, fd);
      this.#kept.set(name, 1);
    }
  }

  /** Whether read ends are sent to the manager. */
  get storing(): boolean {
    return this.#socket !== null;
  }

  /** Fds handed back and not yet taken. */
  get untaken(): number {
    return this.#handedBack.size;
  }

  /**
   * A read end for `fifo`: the one handed back at start when there is one (and it is a FIFO),
   * else a fresh one ({@linkcode openExitFifo}), a copy of which goes to the manager.
   */
  open(fifo: string): number {
    const name = fdNameOf(this.#stateRoot, fifo);
    const handed = this.#takeHandedBack(name);
    if (handed !== null) return handed;
    const fd = openExitFifo(fifo);
    this.#keep(name, fd);
    return fd;
  }

  /**
   * One read end of `fifo` (from {@linkcode FifoReadEnds.open}) is closed for good; when it
   * was the last, the manager lets its copy go.
   */
  done(fifo: string): void {
    this.#doneWith(fdNameOf(this.#stateRoot, fifo));
  }

  #doneWith(name: string): void {
    const count = this.#kept.get(name);
    if (count === undefined) return;
    if (count > 1) {
      this.#kept.set(name, count - 1);
      return;
    }
    this.#kept.delete(name);
    this.#socket?.remove(name);
  }

  /**
   * After restore: every fd handed back that no running container took. One whose FIFO still
   * exists and has no record, or a record whose cleanup is over, was held by `create-fifo`
   * when the daemon went down: it is held again. One whose exit is recorded and still being
   * cleaned, or whose FIFO is gone, is read out, closed and removed from the store.
   */
  async settle(records: RestoreLookup, held: HeldFifos): Promise<SettleResult> {
    const result: SettleResult = { held: 0, discarded: 0 };
    for (const [name, fd] of [...this.#handedBack]) {
      this.#handedBack.delete(name);
      const path = pathOfFd(fd);
      const fifo = fifoOfName(this.#stateRoot, name) ??
        (path !== null && fdNameOf(this.#stateRoot, path) === name ? path : null);
      let holdIt = false;
      if (fifo !== null && path === fifo && this.#isFifo(fd)) {
        const stateDir = fifo.slice(0, -(EXIT_FIFO.length + 1));
        const id = stateDir.slice(stateDir.lastIndexOf("/") + 1);
        const record = await records.get(id).catch(() => null);
        const own = record !== null && record.stateDir === stateDir;
        holdIt = !own || record.state === "stopped";
      }
      if (holdIt && held.adopt(fifo!, fd)) {
        this.#log.info("holding {fifo} again: its read end was held when reaperd went down", {
          fifo,
        });
        result.held++;
        continue;
      }
      this.#log.info("releasing the kept read end {name} ({path}): nothing waits on it", {
        name,
        path: path ?? "unknown",
      });
      discard(fd);
      this.#doneWith(name);
      result.discarded++;
    }
    return result;
  }

  /** Closes the fds handed back and not taken (shutdown before restore finished). */
  close(): void {
    for (const fd of this.#handedBack.values()) libc.close(fd);
    this.#handedBack.clear();
  }

  #takeHandedBack(name: string): number | null {
    const fd = this.#handedBack.get(name);
    if (fd === undefined) return null;
    this.#handedBack.delete(name);
    if (this.#isFifo(fd)) return fd;
    this.#log.warn("fd {fd} handed back as {name} is not a FIFO: closed", { fd, name });
    libc.close(fd);
    this.#doneWith(name);
    return null;
  }

  #isFifo(fd: number): boolean {
    try {
      return libc.fileTypeOfFd(fd) === libc.S_IFIFO;
    } catch {
      return false;
    }
  }

  #keep(name: string, fd: number): void {
    const count = this.#kept.get(name);
    if (count !== undefined) {
      this.#kept.set(name, count + 1);
      return;
    }
    if (this.#socket === null) return;
    try {
      this.#socket.store(name, fd);
      this.#kept.set(name, 1);
    } catch (error) {
      this.#log.warn("cannot keep the read end of {name} with the service manager: {error}", {
        name,
        error: errorMessage(error),
      });
    }
  }
}

/** Reads a read end out (bounded) and closes it. */
function discard(fd: number): void {
  const buf = new Uint8Array(4096);
  try {
    for (let i = 0; i < 256; i++) {
      const n = libc.read(fd, buf);
      if (n === null || n === 0) break;
    }
  } catch {
    // Whatever it was, it is closed now.
  }
  libc.close(fd);
}

/**
 * The read ends as the environment sets them up: a socket to the manager when
 * `notifyAddress` is set, and the fds handed back.
 */
export function fifoReadEnds(
  stateRoot: string,
  notifyAddress: string | null,
  handedBack: readonly ListenFd[],
  log: Logger,
): FifoReadEnds {
  let failures = 0;
  const socket = notifyAddress === null ? null : new FdStoreSocket(notifyAddress, (error) => {
    // Said once: every FIFO would repeat it while the manager is unreachable.
    if (failures++ === 0) {
      log.warn("cannot reach the service manager's fd store: {error}", {
        error: errorMessage(error),
      });
    }
  });
  return new FifoReadEnds({ stateRoot, socket, handedBack, log });
}
