/**
 * The running records this store committed last, kept in memory so that an exit can be
 * committed without reading its record first: each is its versionstamp followed by the
 * record's values as a JSON array, one string per container (no object graph to keep per
 * container, and no key names repeated ten thousand times). The fields every running record
 * has the same way (its id is the map's key, `state` is "running", `exit` null) are not kept,
 * and a state dir `<parent>/<id>` keeps only the index of its parent, kept once.
 *
 * What it says is only a guess to be checked: a commit built from it checks the versionstamp,
 * so a record changed by anything the cache missed fails the check and is read again. Only a
 * hit that agrees with the exit may skip the read; a miss or a disagreement reads.
 *
 * @module
 */

import type { ContainerRecord } from "../types.ts";

/** The fields kept, in the order of the kept array. */
const KEPT = [
  "name",
  "runtime",
  "stateDir",
  "mounts",
  "paths",
  "pid",
  "startTime",
  "ppid",
  "pStartTime",
  "memoryCgroup",
  "createdAt",
  "updatedAt",
] as const;
/** The fields every kept record has the same way. */
const IMPLIED = ["id", "state", "exit"] as const;
/** Every field of a record is kept or implied: a new one fails type checking here. */
const everyField:
  Exclude<keyof ContainerRecord, (typeof KEPT)[number] | (typeof IMPLIED)[number]> extends never
    ? true
    : never = true;
const KNOWN: ReadonlySet<string> = new Set<string>(everyField ? [...KEPT, ...IMPLIED] : []);

/** Most distinct state dir parents remembered (one per runtime in the usual layouts). */
const MAX_PARENTS = 64;

/** Records in state `running`, by container id, as last committed. */
export class RunningCache {
  readonly #byId = new Map<string, string>();
  /**
   * The parents of state dirs ending in their container's id (`/var/run/isulad/runc/`), each
   * kept once: a record keeps the parent's index instead of the path.
   */
  readonly #parents: string[] = [];
  readonly #parentIndex = new Map<string, number>();

  /** How many records are kept. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Notes what a commit wrote to container `id`'s record: kept while it is running, dropped
   * otherwise (null: deleted, or in doubt). A record of a shape this cache does not know is
   * dropped too: it is read when its exit comes rather than kept without a field.
   */
  wrote(id: string, record: ContainerRecord | null, versionstamp: string): void {
    if (
      record === null || record.state !== "running" || record.exit !== null || record.id !== id ||
      !Object.keys(record).every((key) => KNOWN.has(key))
    ) {
      this.#byId.delete(id);
      return;
    }
    // A name that is the id (the usual case) is kept as 0, a missing memory cgroup as 0.
    const values: unknown[] = KEPT.map((key) =>
      key === "name" && record.name === id
        ? 0
        : key === "memoryCgroup"
        ? (record.memoryCgroup ?? 0)
        : key === "stateDir"
        ? this.#shortDir(id, record.stateDir)
        : record[key]
    );
    if (values.includes(undefined)) {
      this.#byId.delete(id);
      return;
    }
    this.#byId.set(id, versionstamp + JSON.stringify(values));
  }

  /** The index of the parent of `stateDir` when it is `<parent><id>`, else the path itself. */
  #shortDir(id: string, stateDir: string): number | string {
    if (!stateDir.endsWith(`/${id}`)) return stateDir;
    const parent = stateDir.slice(0, stateDir.length - id.length);
    let index = this.#parentIndex.get(parent);
    if (index === undefined) {
      if (this.#parents.length >= MAX_PARENTS) return stateDir;
      index = this.#parents.push(parent) - 1;
      this.#parentIndex.set(parent, index);
    }
    return index;
  }

  /** Forgets container `id` (its record changed in a way not known here). */
  drop(id: string): void {
    this.#byId.delete(id);
  }

  /** How many characters are kept for `id`, or null when nothing is. */
  keptBytes(id: string): number | null {
    return this.#byId.get(id)?.length ?? null;
  }

  /** The record of `id` as last committed running, with its versionstamp; null if unknown. */
  get(id: string): { record: ContainerRecord; versionstamp: string } | null {
    const kept = this.#byId.get(id);
    if (kept === undefined) return null;
    const at = kept.indexOf("[");
    const values: unknown[] = JSON.parse(kept.slice(at));
    const record: Record<string, unknown> = { id };
    KEPT.forEach((key, i) => {
      const value = values[i];
      if (key === "name") record.name = value === 0 ? id : value;
      else if (key === "stateDir") {
        record.stateDir = typeof value === "number" ? this.#parents[value] + id : value;
      } else if (key === "memoryCgroup") {
        if (value !== 0) record.memoryCgroup = value;
      } else record[key] = value;
    });
    record.state = "running";
    record.exit = null;
    return { versionstamp: kept.slice(0, at), record: record as unknown as ContainerRecord };
  }
}
