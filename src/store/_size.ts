/**
 * Deno KV's limits and a conservative estimate of what a value costs against them, so that the
 * store can size its commits before it makes them and refuse at the door a record that could
 * never take its exit.
 *
 * Deno KV measures a value by its V8 serialisation: a string costs its length (twice that when
 * one of its characters lies beyond Latin-1) plus a tag and a varint length, a number at most
 * nine bytes, an object or array a few bytes besides its members. The estimate counts each of
 * those at its most, so it is never below the real size.
 *
 * @module
 */

/** Largest value Deno KV stores (bytes). */
export const MAX_VALUE_BYTES = 65_536;
/** Largest total size of keys and values in one atomic commit (bytes). */
export const MAX_COMMIT_BYTES = 819_200;
/** Most mutations in one atomic commit. */
export const MAX_MUTATIONS = 1_000;
/** Most checks in one atomic commit. */
export const MAX_CHECKS = 100;

/** Bytes an estimate leaves free under a limit, for the framing the estimate does not see. */
const SLACK = 256;

/** The largest value the store writes, with room to spare for the estimate's blind spots. */
export const VALUE_BUDGET = MAX_VALUE_BYTES - SLACK;
/** The largest commit the store makes, likewise. */
export const COMMIT_BUDGET = MAX_COMMIT_BYTES - 16 * 1024;

/**
 * Splits `writes`, in order, into runs that each fit one commit: at most `maxCount` writes and
 * at most {@linkcode COMMIT_BUDGET} bytes by their `bytes` estimate (a write larger than the
 * budget goes alone).
 */
export function commitGroups<T extends { bytes: number }>(
  writes: readonly T[],
  maxCount: number,
): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let groupBytes = 0;
  for (const write of writes) {
    if (
      group.length === maxCount || (group.length > 0 && groupBytes + write.bytes > COMMIT_BUDGET)
    ) {
      groups.push(group);
      group = [];
      groupBytes = 0;
    }
    group.push(write);
    groupBytes += write.bytes;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

// deno-lint-ignore no-control-regex
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;

/** At least what `value` (plain data: strings, numbers, booleans, null, arrays, objects) costs. */
export function valueSize(value: unknown): number {
  // The serialiser's version header.
  return 2 + serialisedSize(value);
}

function serialisedSize(value: unknown): number {
  switch (typeof value) {
    case "string": {
      const twoByte = BEYOND_LATIN1.test(value);
      const bytes = twoByte ? value.length * 2 : value.length;
      // Tag, length, the characters, and a byte of padding that may align two-byte text.
      return 1 + varintSize(bytes) + bytes + (twoByte ? 1 : 0);
    }
    case "number":
    case "bigint":
      return 10;
    case "boolean":
    case "undefined":
      return 1;
    case "object": {
      if (value === null) return 1;
      if (Array.isArray(value)) {
        // Tag and length, the items, end tag, property count and length again. An array read
        // back from the store may be written as a sparse one, each item after its index.
        let size = 3 + 2 * varintSize(value.length);
        value.forEach((item, index) => size += 1 + varintSize(index * 2) + serialisedSize(item));
        return size;
      }
      const entries = Object.entries(value);
      let size = 2 + varintSize(entries.length);
      for (const [key, item] of entries) size += serialisedSize(key) + serialisedSize(item);
      return size;
    }
    default:
      return 16;
  }
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** At least what a key costs (its parts, as Deno KV encodes them). */
export function keySize(key: Deno.KvKey): number {
  let size = 0;
  for (const part of key) size += typeof part === "string" ? part.length * 3 + 2 : 10;
  return size;
}
