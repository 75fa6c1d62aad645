/**
 * What the store accepts before it writes anything: ids and runtime names that are safe as one
 * path component and as a KV key part, absolute paths, and process numbers that are integers.
 *
 * @module
 */

import { StoreInputError } from "./errors.ts";

const MAX_NAME = 256;
const MAX_PATH = 4096;

/**
 * Throws StoreInputError unless `value` can name a container or a runtime: 1–256 characters,
 * no `/`, no `..`, no NUL, not `.` (it becomes a directory name under the state root).
 */
export function checkName(value: unknown, what: string): asserts value is string {
  if (
    typeof value !== "string" || value.length === 0 || value.length > MAX_NAME ||
    value.includes("/") || value.includes("..") || value.includes("\0") || value === "."
  ) {
    throw new StoreInputError(
      `${what} must be 1-${MAX_NAME} characters without "/", ".." or NUL, got ${
        JSON.stringify(value)
      }`,
    );
  }
}

/** Throws StoreInputError unless `value` is free text of at most `max` characters, no NUL. */
export function checkText(value: unknown, what: string, max = MAX_NAME): asserts value is string {
  if (typeof value !== "string" || value.length > max || value.includes("\0")) {
    throw new StoreInputError(`${what} must be text of at most ${max} characters`);
  }
}

/** Throws StoreInputError unless `value` is an absolute path without NUL, at most 4096 long. */
export function checkPath(value: unknown, what: string): asserts value is string {
  if (
    typeof value !== "string" || !value.startsWith("/") || value.length > MAX_PATH ||
    value.includes("\0")
  ) {
    throw new StoreInputError(`${what} must be an absolute path, got ${JSON.stringify(value)}`);
  }
}

/** Throws StoreInputError unless `value` is a list of absolute paths. */
export function checkPaths(value: unknown, what: string): asserts value is readonly string[] {
  if (!Array.isArray(value)) throw new StoreInputError(`${what} must be a list of paths`);
  for (const path of value) checkPath(path, `each of ${what}`);
}

/** Throws StoreInputError unless `value` is an integer ≥ `min` (a pid, a start time). */
export function checkInteger(value: unknown, what: string, min: number): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new StoreInputError(`${what} must be an integer >= ${min}, got ${value}`);
  }
}

/** Throws StoreInputError unless `value` is a finite time in ms since the epoch. */
export function checkTime(value: unknown, what: string): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new StoreInputError(`${what} must be a time in ms since the epoch, got ${value}`);
  }
}
