/**
 * `--filter key=value[,key=value…]` for `ps` and `events`: the flag may repeat; values of one
 * key are alternatives, different keys must all match (as `docker ps --filter` does).
 *
 * @module
 */

import { InvalidArgumentError } from "@commander-js/extra-typings";

/** Each key with the values it may take, or null for any non-empty value. */
export type FilterKeys = Record<string, readonly string[] | null>;

/** Parsed filters: each key given with the values it accepts. */
export type Filters = Map<string, Set<string>>;

/**
 * A commander argument parser for one `--filter` flag, adding to the filters seen so far.
 *
 * @param keys The keys this command knows.
 */
export function filterArg(
  keys: FilterKeys,
): (value: string, previous: Filters | undefined) => Filters {
  return (value, previous) => {
    const filters: Filters = new Map([...previous ?? []].map(([k, v]) => [k, new Set(v)]));
    for (const part of value.split(",")) {
      const eq = part.indexOf("=");
      const key = part.slice(0, Math.max(eq, 0));
      const wanted = part.slice(eq + 1);
      if (eq < 1 || wanted === "") {
        throw new InvalidArgumentError(
          `filters are key=value (keys: ${Object.keys(keys).join(", ")}).`,
        );
      }
      if (!Object.hasOwn(keys, key)) {
        throw new InvalidArgumentError(
          `unknown filter key ${key} (keys: ${Object.keys(keys).join(", ")}).`,
        );
      }
      const allowed = keys[key];
      if (allowed && !allowed.includes(wanted)) {
        throw new InvalidArgumentError(`${key} must be one of ${allowed.join(", ")}.`);
      }
      filters.set(key, (filters.get(key) ?? new Set()).add(wanted));
    }
    return filters;
  };
}

/**
 * Whether an item passes: for every key filtered on, `valueOf(key)` is one of its values.
 *
 * @param filters The parsed filters (none: everything passes).
 * @param valueOf The item's value for a key (null when it has none: it then never matches).
 */
export function passes(filters: Filters, valueOf: (key: string) => string | null): boolean {
  for (const [key, values] of filters) {
    const value = valueOf(key);
    if (value === null || !values.has(value)) return false;
  }
  return true;
}
