/**
 * The service manager's file descriptor store, from the sending side (sd_notify(3)
 * `FDSTORE=1`, `FDSTOREREMOVE=1`): a descriptor sent with a name is kept by the manager and
 * handed back at the next start (see listen_fds.ts), until it is removed by name.
 *
 * Every message is sent with `FDPOLL=0`: the manager must not drop a descriptor when it
 * reports a hang-up, since a FIFO whose writer closed is exactly the one holding a status.
 *
 * Sends never block. When the manager's queue is full, what waits is the request, not a
 * descriptor: a store request asks its owner for the fd only when it is sent at last (nothing
 * to send when the owner closed it meanwhile), so a manager that falls behind costs the
 * process no descriptor. Requests wait by name, the latest per name winning (a remove before
 * a store), so their number is bounded by the names in use.
 *
 * @module
 */

import { Errno, SysError } from "./errno.ts";
import * as libc from "./libc.ts";

/** The longest name the manager accepts (FDNAME_MAX). */
export const FD_NAME_MAX = 255;

/** Whether `name` can be stored: 1–255 printable ASCII characters, no `:` (the separator). */
export function isValidFdName(name: string): boolean {
  return name.length > 0 && name.length <= FD_NAME_MAX && /^[\x21-\x39\x3b-\x7e]+$/.test(name);
}

/**
 * How soon a full queue is tried again while the manager takes messages. The manager's queue
 * holds few datagrams (net.unix.max_dgram_qlen: 10 by default, 512 under systemd) and drains
 * fast; a request that waits is a read end not yet kept, so it is retried at once.
 */
const RETRY_MS = 1;
/** How far apart tries get while the manager takes nothing (each try is one sendmsg). */
const RETRY_MAX_MS = 100;
const encoder = new TextEncoder();

/** The fd to store, asked for when it is sent: null when there is nothing left to keep. */
export type FdSource = () => number | null;

/** What waits for one name: a remove of the copies under it, then a store. */
interface Waiting {
  remove: boolean;
  store: FdSource | null;
}

/** What {@linkcode FdStoreSocket} tells its owner. */
export interface FdStoreSocketEvents {
  /** A request the manager could not be given (it is dropped). */
  onError: (error: unknown) => void;
  /** The manager's queue is full: requests wait (told once until they are all sent). */
  onFull?: () => void;
  /** Every request that waited is sent. */
  onCaughtUp?: () => void;
}

/** Sends store and remove requests to the manager at `address` (NOTIFY_SOCKET's value). */
export class FdStoreSocket {
  readonly #address: string;
  readonly #events: FdStoreSocketEvents;
  #sock: number | null = null;
  /** Requests waiting for the manager's queue to drain, by name, oldest first. */
  readonly #waiting = new Map<string, Waiting>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #retryMs = RETRY_MS;

  /**
   * @param address an absolute path, or an abstract name with its leading NUL
   * @param events told of dropped requests and of a full queue
   */
  constructor(address: string, events: FdStoreSocketEvents | ((error: unknown) => void)) {
    this.#address = address;
    this.#events = typeof events === "function" ? { onError: events } : events;
  }

  /** Names with a request waiting for the manager's queue to drain. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Store requests waiting: read ends the manager does not hold yet. */
  get waitingStores(): number {
    let n = 0;
    for (const w of this.#waiting.values()) if (w.store !== null) n++;
    return n;
  }

  /**
   * Asks the manager to keep a copy of `fd` under `name`. When the manager's queue is full the
   * request waits, and `later` gives the fd to send when it goes (null: nothing left to keep);
   * `fd` itself may be closed by then.
   */
  store(name: string, fd: number, later: FdSource): void {
    checkName(name);
    const waiting = this.#waiting.get(name);
    if (waiting !== undefined) {
      waiting.store = later;
      return;
    }
    if (this.#trySend(storeText(name), fd)) return;
    this.#wait(name, { remove: false, store: later });
  }

  /** Asks the manager to close every copy it keeps under `name`. */
  remove(name: string): void {
    checkName(name);
    const waiting = this.#waiting.get(name);
    if (waiting !== undefined) {
      // A store not sent yet needs no remove of its own; one sent earlier still does.
      waiting.store = null;
      waiting.remove = true;
      return;
    }
    if (this.#trySend(removeText(name), null)) return;
    this.#wait(name, { remove: true, store: null });
  }

  /** Closes the socket and drops whatever still waits. */
  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#waiting.clear();
    if (this.#sock !== null) libc.close(this.#sock);
    this.#sock = null;
  }

  #wait(name: string, waiting: Waiting): void {
    if (this.#waiting.size === 0) this.#events.onFull?.();
    this.#waiting.set(name, waiting);
    this.#timer ??= setTimeout(() => this.#flush(), this.#retryMs);
  }

  /** True when sent or dropped for good; false when the manager's queue is full. */
  #trySend(text: string, fd: number | null): boolean {
    try {
      this.#sock ??= libc.unixDatagramSocket();
      libc.sendDatagram(this.#sock, this.#address, encoder.encode(text), fd === null ? [] : [fd]);
      return true;
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.EAGAIN) return false;
      this.#events.onError(e);
      return true;
    }
  }

  #flush(): void {
    this.#timer = null;
    let sent = false;
    for (const [name, waiting] of this.#waiting) {
      if (waiting.remove) {
        if (!this.#trySend(removeText(name), null)) break;
        waiting.remove = false;
        sent = true;
      }
      if (waiting.store !== null) {
        const fd = waiting.store();
        if (fd !== null) {
          if (!this.#trySend(storeText(name), fd)) break;
          sent = true;
        }
        waiting.store = null;
      }
      this.#waiting.delete(name);
    }
    if (this.#waiting.size === 0) {
      this.#retryMs = RETRY_MS;
      this.#events.onCaughtUp?.();
      return;
    }
    // At once while the manager takes messages; further apart while it takes none.
    this.#retryMs = sent ? RETRY_MS : Math.min(RETRY_MAX_MS, this.#retryMs * 2);
    this.#timer = setTimeout(() => this.#flush(), this.#retryMs);
  }
}

function storeText(name: string): string {
  return `FDSTORE=1\nFDPOLL=0\nFDNAME=${name}`;
}

function removeText(name: string): string {
  return `FDSTOREREMOVE=1\nFDNAME=${name}`;
}

function checkName(name: string): string {
  if (!isValidFdName(name)) throw new Error(`not a valid fd store name: ${JSON.stringify(name)}`);
  return name;
}
