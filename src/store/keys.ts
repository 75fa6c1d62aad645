/**
 * The KV key layout. Nothing outside `src/store/` builds a key; changing a prefix here changes
 * the on-disk format, so existing databases would no longer be read.
 *
 * @module
 */

/** `["container", id]` → `ContainerRecord`. */
export const CONTAINER = "container";
/** `["gc", id]` → `GcEntry`: present exactly while the container is in state `gc`. */
export const GC = "gc";
/** `["event", seq]` → `ReaperEvent`, seq a strictly increasing number from 1. */
export const EVENT = "event";
/**
 * `["stopped", stoppedAt, id]` → null: present exactly while the record of `id` is in state
 * `stopped` since `stoppedAt` (its `updatedAt`), so that retention finds the records due by a
 * range read, oldest first, without reading every record.
 */
export const STOPPED = "stopped";
/**
 * `["lost", id]` → `LostExit`: the exit of the running record of `id` was refused for good (the
 * record has no room for it), so that no later start decodes and refuses it again.
 */
export const LOST = "lost";

/** The key of a container's record. */
export function containerKey(id: string): Deno.KvKey {
  return [CONTAINER, id];
}

/** The key of a container's GC entry. */
export function gcKey(id: string): Deno.KvKey {
  return [GC, id];
}

/** The key of one event of the log. */
export function eventKey(seq: number): Deno.KvKey {
  return [EVENT, seq];
}

/** The key of a container's lost exit. */
export function lostKey(id: string): Deno.KvKey {
  return [LOST, id];
}

/** The key that names a stopped record in the retention index. */
export function stoppedKey(stoppedAt: number, id: string): Deno.KvKey {
  return [STOPPED, stoppedAt, id];
}

/** Prefix of the store's facts about itself. */
export const META = "meta";

/** The store's identity: a UUID made when the store was first opened. */
export const STORE_ID_KEY: Deno.KvKey = [META, "store-id"];

/**
 * Present once every stopped record has its `["stopped", …]` key: a store written before the
 * index existed gets its keys once, by one scan of the records.
 */
export const STOPPED_INDEX_KEY: Deno.KvKey = [META, "stopped-index"];
