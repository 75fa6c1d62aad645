/**
 * Exit FIFO read ends kept alive across a crash or restart of the daemon, in the service
 * manager's file descriptor store.
 *
 * Every read end the daemon opens (`create-fifo`, `monitor`, restore) is also sent to the
 * manager. While the daemon is down the manager's copy keeps the FIFO open for reading, so a
 * shim's status write succeeds and waits in the pipe instead of failing with EPIPE; at the next
 * start the copies come back as fds 3…, and restore adopts them instead of reopening the FIFOs.
 * A copy is removed from the store once the daemon is done with that FIFO: its status consumed
 * after the exit was durable, or its read end let go for good.
 *
 * Names. The manager passes every name back in one environment variable, `LISTEN_FDNAMES`,
 * which the kernel refuses past 128 KiB (E2BIG: the daemon would not start at all). So a name
 * says nothing about its FIFO: it is a unique three-character token (four bytes with the `:`
 * between names, so 32,000 fds fit), and a handed-back fd is matched to its FIFO through its
 * own path in `/proc/self/fd`. A FIFO unlinked since (its path ends in " (deleted)") matches
 * nothing and is let go.
 *
 * A manager that falls behind (its socket queue full) costs no descriptor: a copy waiting to be
 * sent is taken from the daemon's own read end when it goes, and one whose FIFO was let go
 * meanwhile is not sent at all. Until every copy is sent, a status written while the daemon is
 * down would be lost for those FIFOs: health says how many they are.
 *
 * Without `$NOTIFY_SOCKET` nothing is sent, and only fds handed back are adopted.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { ContainerRecord } from "../types.ts";
import { EXIT_FIFO, openExitFifo } from "../supervisor/exit_fifo.ts";
import type { HeldFifos } from "../supervisor/held_fifos.ts";
import { type FdSource, FdStoreSocket, isValidFdName } from "../sys/fd_store.ts";
import * as libc from "../sys/libc.ts";
import type { ListenFd } from "../sys/listen_fds.ts";
import { errorMessage } from "../error_message.ts";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Characters per name. */
export const FD_NAME_LENGTH = 3;
const NAME_SPACE = ALPHABET.length ** FD_NAME_LENGTH;

/** The `n`th name (0 ≤ n < 62³). */
export function fdName(n: number): string {
  let out = "";
  for (let i = 0; i < FD_NAME_LENGTH; i++) {
    out = ALPHABET[n % ALPHABET.length] + out;
    n = Math.floor(n / ALPHABET.length);
  }
  return out;
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
  /** Sends `fd` now, or what `later` gives once the manager's queue has room. */
  store(name: string, fd: number, later: FdSource): void;
  remove(name: string): void;
  /** Copies not sent yet: the manager's queue is full. */
  readonly waitingStores: number;
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

interface Kept {
  name: string;
  /** The daemon's own open read ends of the FIFO: the copy goes when the last one does. */
  count: number;
  /** Fds the daemon opened or took for it, some maybe closed since (see liveFd). */
  fds: number[];
  /** Its path as /proc/self/fd shows it. */
  procPath: string | null;
}

/** The daemon's FIFO read ends as the fd store sees them. */
export class FifoReadEnds {
  readonly #stateRoot: string;
  /** The state root with symlinks resolved, as /proc/self/fd shows paths below it. */
  readonly #realRoot: string;
  readonly #socket: FdStoreRequests | null;
  readonly #log: Logger;
  /** Handed back at start and not taken yet, by FIFO path (as the daemon names it). */
  readonly #handedBack = new Map<string, { fd: number; name: string }>();
  /** FIFOs the manager holds a copy of, by path. */
  readonly #kept = new Map<string, Kept>();
  readonly #usedNames = new Set<string>();
  #nextName = 0;
  #full = false;

  constructor(options: FifoReadEndsOptions) {
    this.#stateRoot = options.stateRoot.replace(/\/+$/, "");
    this.#realRoot = this.#stateRoot;
    try {
      this.#realRoot = Deno.realPathSync(this.#stateRoot);
    } catch {
      // Not there yet: nothing below it can have been handed back.
    }
    this.#socket = options.socket;
    this.#log = options.log;
    const letGo: { fd: number; name: string; procPath: string | null }[] = [];
    for (const { fd, name } of options.handedBack ?? []) {
      const procPath = pathOfFd(fd);
      const path = this.#fromReal(procPath);
      if (
        path === null || this.#handedBack.has(path) || !isValidFdName(name) ||
        this.#usedNames.has(name)
      ) {
        letGo.push({ fd, name, procPath });
        continue;
      }
      this.#handedBack.set(path, { fd, name });
      this.#kept.set(path, { name, count: 1, fds: [fd], procPath });
      this.#usedNames.add(name);
    }
    // Only once every kept name is known: removing a name drops every copy under it, and a
    // second copy under a kept name (a remove the manager never got) goes with that one.
    const removed = new Set<string>();
    for (const { fd, name, procPath } of letGo) {
      // A FIFO unlinked while the daemon was down, a copy the manager kept twice, or an fd
      // reaperd never stored. Closed, not read out: a copy of a FIFO some other fd is kept
      // for shares its pipe, and the status waiting there is that one's.
      this.#log.info("letting go of fd {fd} handed back as {name} ({path})", {
        fd,
        name,
        path: procPath ?? "closed",
      });
      libc.close(fd);
      if (!isValidFdName(name) || this.#usedNames.has(name) || removed.has(name)) continue;
      removed.add(name);
      this.#socket?.remove(name);
    }
  }

  /** Fds handed back and not yet taken. */
  get untaken(): number {
    return this.#handedBack.size;
  }

  /** Why the FIFOs are not all safe across a restart now; empty when they are. */
  problems(): string[] {
    const waiting = this.#socket?.waitingStores ?? 0;
    if (waiting === 0) return [];
    return [
      `${waiting} exit FIFO read end${waiting === 1 ? "" : "s"} not in the service manager's ` +
      `fd store yet (its queue is full): a status written to ${
        waiting === 1 ? "it" : "them"
      } while reaperd is down would be lost`,
    ];
  }

  /**
   * A read end for `fifo`: the one handed back at start when there is one (and it is a FIFO),
   * else a fresh one ({@linkcode openExitFifo}), a copy of which goes to the manager.
   */
  open(fifo: string): number {
    const handed = this.#takeHandedBack(fifo);
    if (handed !== null) return handed;
    const fd = openExitFifo(fifo);
    this.#keep(fifo, fd);
    return fd;
  }

  /**
   * One read end of `fifo` (from {@linkcode FifoReadEnds.open}) is closed for good; when it
   * was the last, the manager lets its copy go.
   */
  done(fifo: string): void {
    const kept = this.#kept.get(fifo);
    if (kept === undefined) return;
    if (--kept.count > 0) return;
    this.#kept.delete(fifo);
    this.#socket?.remove(kept.name);
    this.#usedNames.delete(kept.name);
  }

  /**
   * After restore: every fd handed back that no running container took. One whose FIFO has no
   * record, or a record whose cleanup is over, was held by `create-fifo` when the daemon went
   * down: it is held again. One whose exit is recorded and still being cleaned up is read out,
   * closed and removed from the store.
   */
  async settle(records: RestoreLookup, held: HeldFifos): Promise<SettleResult> {
    const result: SettleResult = { held: 0, discarded: 0 };
    for (const [fifo, { fd }] of [...this.#handedBack]) {
      this.#handedBack.delete(fifo);
      let holdIt = false;
      if (fifo.endsWith(`/${EXIT_FIFO}`) && isFifo(fd)) {
        const stateDir = fifo.slice(0, -(EXIT_FIFO.length + 1));
        const id = stateDir.slice(stateDir.lastIndexOf("/") + 1);
        const record = await records.get(id).catch(() => null);
        const own = record !== null && record.stateDir === stateDir;
        if (own && record.state === "running") {
          // Watched through another read end: whatever waits in the FIFO is that one's to
          // decode, and the manager's copy goes when that one is done with.
          libc.close(fd);
          continue;
        }
        holdIt = !own || record.state === "stopped";
      }
      if (holdIt && held.adopt(fifo, fd)) {
        this.#log.info("holding {fifo} again: its read end was held when reaperd went down", {
          fifo,
        });
        result.held++;
        continue;
      }
      this.#log.info("letting go of the kept read end of {fifo}: its exit is recorded", { fifo });
      discard(fd);
      this.done(fifo);
      result.discarded++;
    }
    return result;
  }

  /** Closes the fds handed back and not taken (shutdown before restore finished). */
  close(): void {
    for (const { fd } of this.#handedBack.values()) libc.close(fd);
    this.#handedBack.clear();
  }

  /** A path as /proc/self/fd shows it, below the state root as the daemon names it. */
  #fromReal(path: string | null): string | null {
    if (path === null || path.endsWith(" (deleted)")) return null;
    if (this.#realRoot !== this.#stateRoot && path.startsWith(`${this.#realRoot}/`)) {
      return this.#stateRoot + path.slice(this.#realRoot.length);
    }
    return path;
  }

  #takeHandedBack(fifo: string): number | null {
    const handed = this.#handedBack.get(fifo);
    if (handed === undefined) return null;
    this.#handedBack.delete(fifo);
    if (isFifo(handed.fd)) return handed.fd;
    this.#log.warn("fd {fd} handed back for {fifo} is not a FIFO: closed", {
      fd: handed.fd,
      fifo,
    });
    libc.close(handed.fd);
    this.done(fifo);
    return null;
  }

  #keep(fifo: string, fd: number): void {
    const existing = this.#kept.get(fifo);
    if (existing !== undefined) {
      existing.count++;
      existing.fds.push(fd);
      return;
    }
    if (this.#socket === null) return;
    const name = this.#allocateName();
    if (name === null) return;
    const kept: Kept = { name, count: 1, fds: [fd], procPath: pathOfFd(fd) };
    try {
      this.#kept.set(fifo, kept);
      this.#usedNames.add(name);
      this.#socket.store(name, fd, () => this.#liveFd(fifo, kept));
    } catch (error) {
      this.#kept.delete(fifo);
      this.#usedNames.delete(name);
      this.#log.warn("cannot keep the read end of {fifo} with the service manager: {error}", {
        fifo,
        error: errorMessage(error),
      });
    }
  }

  /**
   * One of the daemon's read ends of `fifo` still open, for a copy sent late; null when the
   * FIFO was let go meanwhile. An fd number closed and reused since names another file (or
   * none) in /proc/self/fd and is passed over.
   */
  #liveFd(fifo: string, kept: Kept): number | null {
    if (this.#kept.get(fifo) !== kept || kept.procPath === null) return null;
    while (kept.fds.length > 0) {
      const fd = kept.fds[kept.fds.length - 1]!;
      if (pathOfFd(fd) === kept.procPath && isFifo(fd)) return fd;
      kept.fds.pop();
    }
    return null;
  }

  #allocateName(): string | null {
    if (this.#usedNames.size >= NAME_SPACE) {
      if (!this.#full) {
        this.#full = true;
        this.#log.warn("every fd store name is in use: further read ends are not kept");
      }
      return null;
    }
    this.#full = false;
    for (;;) {
      const name = fdName(this.#nextName);
      this.#nextName = (this.#nextName + 1) % NAME_SPACE;
      if (!this.#usedNames.has(name)) return name;
    }
  }
}

/**
 * Whether `fd` is a FIFO; one that is gets O_NONBLOCK (every read end reaperd stores has it,
 * but a read that blocks would stop the daemon, so it is made sure of).
 */
function isFifo(fd: number): boolean {
  try {
    if (libc.fileTypeOfFd(fd) !== libc.S_IFIFO) return false;
    libc.setNonBlocking(fd);
    return true;
  } catch {
    return false;
  }
}

/** Reads a FIFO's read end out (bounded) and closes it; anything else is just closed. */
function discard(fd: number): void {
  const buf = new Uint8Array(4096);
  try {
    if (!isFifo(fd)) throw new Error("not a FIFO");
    for (let i = 0; i < 256; i++) {
      const n = libc.read(fd, buf);
      if (n === null || n === 0) break;
    }
  } catch {
    // Whatever it was, it is closed now.
  }
  libc.close(fd);
}

/** How long the manager's queue may stay full before it is worth a warning (ms). */
const FULL_WARN_MS = 1_000;

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
  // A burst fills the manager's queue for a moment now and then: only one that lasts is said.
  let fullTimer: ReturnType<typeof setTimeout> | null = null;
  let warned = false;
  const socket = notifyAddress === null ? null : new FdStoreSocket(notifyAddress, {
    onError: (error) => {
      // Said once: every FIFO would repeat it while the manager is unreachable.
      if (failures++ === 0) {
        log.warn("cannot reach the service manager's fd store: {error}", {
          error: errorMessage(error),
        });
      }
    },
    onFull: () => {
      fullTimer = setTimeout(() => {
        fullTimer = null;
        warned = true;
        log.warn(
          "the service manager's fd store is full (it does not read its socket): {count} exit " +
            "FIFO read ends wait to be kept, and a status written to them while reaperd is " +
            "down would be lost",
          { count: socket?.waitingStores ?? 0 },
        );
      }, FULL_WARN_MS);
      Deno.unrefTimer(fullTimer);
    },
    onCaughtUp: () => {
      if (fullTimer !== null) clearTimeout(fullTimer);
      fullTimer = null;
      if (warned) log.info("the service manager's fd store took every read end that waited");
      warned = false;
    },
  });
  return new FifoReadEnds({ stateRoot, socket, handedBack, log });
}
