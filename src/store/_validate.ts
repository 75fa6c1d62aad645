/**
 * What the store accepts before it writes anything: ids, runtime names and paths as identity.ts
 * defines them (safe as one path component and as a KV key part), and process numbers that are
 * integers.
 *
 * @module
 */

import { absolutePathProblem, idProblem, runtimeNameProblem } from "../identity.ts";
import { StoreInputError } from "./errors.ts";

const MAX_TEXT = 256;

/** Throws StoreInputError unless `value` is a container id (identity.ts `idProblem`). */
export function checkId(value: unknown, what = "container id"): asserts value is string {
  const problem = idProblem(value);
  if (problem !== null) throw new StoreInputError(`${what} ${problem}`);
}

/** Throws StoreInputError unless `value` is a runtime name (identity.ts). */
export function checkRuntime(value: unknown, what = "runtime"): asserts value is string {
  const problem = runtimeNameProblem(value);
  if (problem !== null) throw new StoreInputError(`${what} ${problem}`);
}

/** Throws StoreInputError unless `value` is free text of at most `max` characters, no NUL. */
export function checkText(value: unknown, what: string, max = MAX_TEXT): asserts value is string {
  if (typeof value !== "string" || value.length > max || value.includes("\0")) {
    throw new StoreInputError(`${what} must be text of at most ${max} characters`);
  }
}

/** Throws StoreInputError unless `value` is an absolute path (identity.ts `absolutePathProblem`). */
export function checkPath(value: unknown, what: string): asserts value is string {
  const problem = absolutePathProblem(value);
  if (problem !== null) throw new StoreInputError(`${what} ${problem}`);
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
