/**
 * Opening the daemon's store file: locked against a second daemon, private (0600) whatever the
 * umask, a damaged file moved aside so the daemon can start, and a store that lost its history
 * noticed. The last is told by a generation marker kept beside the store
 * (`<db>.generation`): the store's identity and the last event it had reached, written after
 * commits. A store that comes back with another identity, or whose event log ends before the
 * marker's, lost writes it had made durable (a deleted or garbled `-wal` after a crash, a db
 * replaced by an old copy): the daemon says so loudly instead of starting as if all were well.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { Store, type StoreOptions } from "../store/store.ts";
import { SysError } from "../sys/errno.ts";
import { type HeldLock, tryLock } from "../sys/lock_file.ts";
import { errorMessage } from "../error_message.ts";

/** The store cannot be opened; the message is one line naming what and where. */
export class StoreOpenError extends Error {
  /** @param message One line: what failed, on which path, and why. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreOpenError";
  }
}

/** Another process holds the store. */
export class StoreInUseError extends StoreOpenError {
  /** The holder's pid, null when unknown. */
  readonly heldBy: number | null;

  /**
   * @param db The store's path.
   * @param heldBy The holder's pid, null when unknown.
   */
  constructor(db: string, heldBy: number | null) {
    const who = heldBy === null ? "another process" : `process ${heldBy}`;
    super(`the store ${db} is in use by ${who}: is reaperd already running?`);
    this.name = "StoreInUseError";
    this.heldBy = heldBy;
  }
}

/** An open store with its lock. */
export interface OpenedStore {
  /** The KV handle under the store. */
  kv: Deno.Kv;
  /** The store. */
  store: Store;
  /** What is wrong with the store (damage moved aside, history lost): health reports it. */
  problems: string[];
  /** Writes the generation marker, closes the store and releases the lock. */
  close(): void;
}

/** What {@linkcode openStore} needs. */
export interface OpenStoreOptions {
  /** Path of the KV file. */
  db: string;
  log: Logger;
  /** How the store behaves. */
  storeOptions?: StoreOptions;
  /** Wall clock (ms since the epoch), for the name of a file moved aside. */
  now?: () => number;
}

const SQLITE_HEADER = "SQLite format 3\0";
/** Files SQLite keeps beside the db. */
const SIDE_FILES = ["-wal", "-shm"];
/** What SQLite says of a file that is not a sound database. */
const DAMAGE = /malformed|not a database|corrupt/i;
/** How long after a commit the generation marker is brought up to date (ms). */
const MARKER_DELAY_MS = 200;

/**
 * Opens (creating if needed) the store at `options.db`: takes the lock on the db file itself,
 * makes the db and its side files 0600, moves a damaged db aside and starts a fresh one, and
 * compares the store with its generation marker.
 *
 * @throws {StoreInUseError} when another process holds the store.
 * @throws {StoreOpenError} when the store cannot be opened (read-only file system, no
 *   permission…), with one line naming what and where.
 */
export async function openStore(options: OpenStoreOptions): Promise<OpenedStore> {
  const { db, log } = options;
  const now = options.now ?? Date.now;
  const dir = parentDir(db);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new StoreOpenError(`cannot create the store's directory ${dir}: ${describe(error)}`, {
      cause: error,
    });
  }
  let lock = lockStore(db);
  const problems: string[] = [];
  let kv: Deno.Kv | null = null;
  try {
    await restrictModes(db);
    let opened: { kv: Deno.Kv; store: Store } | null = null;
    let damage = await headerProblem(db);
    if (damage === null) {
      try {
        opened = await openAndProbe(db, options.storeOptions);
      } catch (error) {
        const message = errorMessage(error);
        if (!DAMAGE.test(message)) {
          throw new StoreOpenError(`cannot open the store ${db}: ${describe(error)}`, {
            cause: error,
          });
        }
        damage = message;
      }
    }
    if (opened === null) {
      const aside = await moveAside(db, now());
      const problem = `the store ${db} was damaged (${damage}); it was moved aside to ${aside} ` +
        "and reaperd started with an empty store: containers are rediscovered from the state root";
      log.error("{problem}", { problem });
      problems.push(problem);
      const fresh = lockStore(db);
      lock.release();
      lock = fresh;
      await restrictModes(db);
      try {
        opened = await openAndProbe(db, options.storeOptions);
      } catch (error) {
        throw new StoreOpenError(`cannot open a fresh store ${db}: ${describe(error)}`, {
          cause: error,
        });
      }
    }
    kv = opened.kv;
    const marker = new GenerationMarker(`${db}.generation`, db, opened.store, log);
    const lost = await marker.check();
    if (lost !== null) {
      log.error("{problem}", { problem: lost });
      problems.push(lost);
    }
    // SQLite made its side files on open, with the db's mode; an old store may have had others.
    await restrictModes(db);
    const held = lock;
    return {
      kv: opened.kv,
      store: opened.store,
      problems,
      close: () => {
        marker.stop();
        opened.kv.close();
        held.release();
      },
    };
  } catch (error) {
    kv?.close();
    lock.release();
    throw error;
  }
}

function lockStore(db: string): HeldLock {
  let lock: ReturnType<typeof tryLock>;
  try {
    lock = tryLock(db);
  } catch (error) {
    throw new StoreOpenError(`cannot open the store ${db}: ${describe(error)}`, { cause: error });
  }
  if (!("release" in lock)) throw new StoreInUseError(db, lock.heldBy);
  return lock;
}

/** Opens the KV file and reads what restore will read, so that damage shows now. */
async function openAndProbe(
  db: string,
  options: StoreOptions | undefined,
): Promise<{ kv: Deno.Kv; store: Store }> {
  const kv = await Deno.openKv(db);
  try {
    const store = await Store.open(kv, options);
    await store.list();
    await store.listGc();
    await store.eventsSince(Math.max(0, store.lastSeq - 1), 1);
    return { kv, store };
  } catch (error) {
    kv.close();
    throw error;
  }
}

/** Why the file at `db` cannot be an SQLite database, or null when its header says it is. */
async function headerProblem(db: string): Promise<string | null> {
  const file = await Deno.open(db, { read: true });
  try {
    const head = new Uint8Array(SQLITE_HEADER.length);
    let got = 0;
    while (got < head.length) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    // An empty file is a new store; anything else must start as SQLite files do.
    if (got === 0) return null;
    const text = new TextDecoder("latin1").decode(head.subarray(0, got));
    return text === SQLITE_HEADER ? null : "file is not a database: its header is not SQLite's";
  } finally {
    file.close();
  }
}

/** Moves the db, its side files and its marker to `<db>.damaged-<time>…`; returns that name. */
async function moveAside(db: string, now: number): Promise<string> {
  const aside = `${db}.damaged-${new Date(now).toISOString().replace(/[:.]/g, "-")}`;
  for (const suffix of ["", ...SIDE_FILES, ".generation"]) {
    try {
      await Deno.rename(`${db}${suffix}`, `${aside}${suffix}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw new StoreOpenError(
        `cannot move the damaged store ${db}${suffix} aside: ${describe(error)}`,
        { cause: error },
      );
    }
  }
  return aside;
}

/** Makes the db and its side files 0600 (they hold every container's paths). */
async function restrictModes(db: string): Promise<void> {
  for (const path of [db, ...SIDE_FILES.map((s) => `${db}${s}`)]) {
    try {
      const info = await Deno.lstat(path);
      if (info.isFile && ((info.mode ?? 0) & 0o777) !== 0o600) await Deno.chmod(path, 0o600);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/** What the marker file holds. */
interface MarkerContent {
  storeId: string;
  seq: number;
}

/**
 * The generation marker: compared with the store at start, then kept up to date (a little
 * after each commit, and on close).
 */
class GenerationMarker {
  readonly #path: string;
  readonly #db: string;
  readonly #store: Store;
  readonly #log: Logger;
  #storeId = "";
  #timer: ReturnType<typeof setTimeout> | null = null;
  #unsubscribe: () => void = () => {};
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string, db: string, store: Store, log: Logger) {
    this.#path = path;
    this.#db = db;
    this.#store = store;
    this.#log = log;
  }

  /** Compares the store with the marker and starts following commits; the loss, or null. */
  async check(): Promise<string | null> {
    const identity = await this.#store.identity();
    this.#storeId = identity.id;
    const recorded = await this.#read();
    const lastSeq = this.#store.lastSeq;
    let lost: string | null = null;
    if (recorded !== null && recorded.storeId !== identity.id) {
      lost = identity.created
        ? `the store ${this.#db} lost its history: it is empty of what ${this.#path} says it ` +
          `held (events up to ${recorded.seq}); its db or -wal was deleted or damaged`
        : `the store ${this.#db} is not the one ${this.#path} names (${recorded.storeId}): ` +
          "it was replaced, and what the other one held is not here";
    } else if (recorded !== null && lastSeq < recorded.seq) {
      lost = `the store ${this.#db} lost its latest writes: its event log ends at ${lastSeq} ` +
        `but had reached ${recorded.seq} (a deleted or damaged -wal?)`;
    }
    await this.#write();
    this.#unsubscribe = this.#store.subscribe(() => this.#schedule());
    return lost;
  }

  /** Stops following commits and writes the marker one last time. */
  stop(): void {
    this.#unsubscribe();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    try {
      this.#writeSync();
    } catch (error) {
      this.#log.warn("cannot write {path}: {error}", {
        path: this.#path,
        error: errorMessage(error),
      });
    }
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#writing = this.#writing.then(() => this.#write()).catch((error) =>
        this.#log.warn("cannot write {path}: {error}", {
          path: this.#path,
          error: errorMessage(error),
        })
      );
    }, MARKER_DELAY_MS);
    Deno.unrefTimer(this.#timer);
  }

  async #read(): Promise<MarkerContent | null> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as Partial<MarkerContent>;
      if (typeof parsed.storeId === "string" && Number.isSafeInteger(parsed.seq)) {
        return { storeId: parsed.storeId, seq: parsed.seq as number };
      }
    } catch {
      // Reported below.
    }
    this.#log.warn("{path} is unreadable; it is written again from the store", {
      path: this.#path,
    });
    return null;
  }

  #content(): string {
    const content: MarkerContent = { storeId: this.#storeId, seq: this.#store.lastSeq };
    return `${JSON.stringify(content)}\n`;
  }

  async #write(): Promise<void> {
    const tmp = `${this.#path}.tmp`;
    await Deno.writeTextFile(tmp, this.#content(), { mode: 0o600 });
    await Deno.rename(tmp, this.#path);
  }

  #writeSync(): void {
    const tmp = `${this.#path}.tmp`;
    Deno.writeTextFileSync(tmp, this.#content(), { mode: 0o600 });
    Deno.renameSync(tmp, this.#path);
  }
}

/** One line saying why a file operation failed, in words and with the errno's name. */
function describe(error: unknown): string {
  const words: Record<string, string> = {
    EROFS: "read-only file system",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    ENOSPC: "no space left on device",
    ENOENT: "no such file or directory",
    ENOTDIR: "a part of the path is not a directory",
    ELOOP: "the path is a symlink",
  };
  if (error instanceof SysError) {
    return words[error.code] === undefined ? error.message : `${words[error.code]} (${error.code})`;
  }
  const message = errorMessage(error).split("\n")[0] ?? "";
  if (/os error 30\b/.test(message)) return `read-only file system (EROFS): ${message}`;
  return message;
}

function parentDir(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}
