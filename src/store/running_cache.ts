/**
 * The running records this store committed last, kept in memory so that an exit can be
 * committed without reading its record first: each is its versionstamp followed by the
 * record's JSON, one string per container (no object graph to keep per container).
 *
 * What it says is only a guess to be checked: a commit built from it checks the versionstamp,
 * so a record changed by anything the cache missed fails the check and is read again. Only a
 * hit that agrees with the exit may skip the read; a miss or a disagreement reads.
 *
 * @module
 */

import type { ContainerRecord } from "../types.ts";

/** Records in state `running`, by container id, as last committed. */
export class RunningCache {
  readonly #byId = new Map<string, string>();

  /** How many records are kept. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Notes what a commit wrote to container `id`'s record: kept while it is running, dropped
   * otherwise (null: deleted, or in doubt).
   */
  wrote(id: string, record: ContainerRecord | null, versionstamp: string): void {
    if (record === null || record.state !== "running") this.#byId.delete(id);
    else this.#byId.set(id, versionstamp + JSON.stringify(record));
  }

  /** Forgets container `id` (its record changed in a way not known here). */
  drop(id: string): void {
    this.#byId.delete(id);
  }

  /** The record of `id` as last committed running, with its versionstamp; null if unknown. */
  get(id: string): { record: ContainerRecord; versionstamp: string } | null {
    const kept = this.#byId.get(id);
    if (kept === undefined) return null;
    const at = kept.indexOf("{");
    return { versionstamp: kept.slice(0, at), record: JSON.parse(kept.slice(at)) };
  }
}
