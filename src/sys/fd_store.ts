/**
 * The service manager's file descriptor store, from the sending side (sd_notify(3)
 * `FDSTORE=1`, `FDSTOREREMOVE=1`): a descriptor sent with a name is kept by the manager and
 * handed back at the next start (see listen_fds.ts), until it is removed by name.
 *
 * Every message is sent with `FDPOLL=0`: the manager must not drop a descriptor when it
 * reports a hang-up, since a FIFO whose writer closed is exactly the one holding a status.
 * Sends never block; when the manager's queue is full the message waits, in order, for a
 * retry (a descriptor waiting is a private copy, so its owner may close it meanwhile).
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
 * How soon a full queue is tried again. The manager's queue holds few datagrams
 * (net.unix.max_dgram_qlen: 10 by default, 512 under systemd) and drains fast; a message that
 * waits is a read end not yet kept, so it is retried at once rather than later.
 */
const RETRY_MS = 1;
const encoder = new TextEncoder();

interface Queued {
  payload: Uint8Array<ArrayBuffer>;
  /** A private copy of the fd to send, closed once sent. */
  fd: number | null;
}

/** Sends store and remove requests to the manager at `address` (NOTIFY_SOCKET's value). */
export class FdStoreSocket {
  readonly #address: string;
  readonly #onError: (error: unknown) => void;
  #sock: number | null = null;
  readonly #queue: Queued[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;

  /**
   * @param address an absolute path, or an abstract name with its leading NUL
   * @param onError told of a message the manager could not be given (it is dropped)
   */
  constructor(address: string, onError: (error: unknown) => void) {
    this.#address = address;
    this.#onError = onError;
  }

  /** Messages waiting for the manager's queue to drain. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Asks the manager to keep a copy of `fd` under `name`. */
  store(name: string, fd: number): void {
    this.#send(`FDSTORE=1\nFDPOLL=0\nFDNAME=${checkName(name)}`, fd);
  }

  /** Asks the manager to close every copy it keeps under `name`. */
  remove(name: string): void {
    this.#send(`FDSTOREREMOVE=1\nFDNAME=${checkName(name)}`, null);
  }

  /** Closes the socket and drops whatever still waits. */
  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const q of this.#queue.splice(0)) if (q.fd !== null) libc.close(q.fd);
    if (this.#sock !== null) libc.close(this.#sock);
    this.#sock = null;
  }

  #send(text: string, fd: number | null): void {
    const payload = encoder.encode(text);
    if (this.#queue.length === 0 && this.#trySend(payload, fd)) return;
    try {
      this.#queue.push({ payload, fd: fd === null ? null : libc.dupCloseOnExec(fd) });
    } catch (e) {
      this.#onError(e);
      return;
    }
    this.#timer ??= setTimeout(() => this.#flush(), RETRY_MS);
  }

  /** True when sent or dropped for good; false when the manager's queue is full. */
  #trySend(payload: Uint8Array<ArrayBuffer>, fd: number | null): boolean {
    try {
      this.#sock ??= libc.unixDatagramSocket();
      libc.sendDatagram(this.#sock, this.#address, payload, fd === null ? [] : [fd]);
      return true;
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.EAGAIN) return false;
      this.#onError(e);
      return true;
    }
  }

  #flush(): void {
    this.#timer = null;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (!this.#trySend(next.payload, next.fd)) {
        this.#timer = setTimeout(() => this.#flush(), RETRY_MS);
        return;
      }
      this.#queue.shift();
      if (next.fd !== null) libc.close(next.fd);
    }
  }
}

function checkName(name: string): string {
  if (!isValidFdName(name)) throw new Error(`not a valid fd store name: ${JSON.stringify(name)}`);
  return name;
}
