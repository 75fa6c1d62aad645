/**
 * The shapes of what reaperd reads from outside (request bodies, the config file) are valibot
 * schemas, and their leaves are identity.ts's rules. This module turns a rule into a schema and
 * the first problem a schema finds into the one line reaperd prints: `<field path> <problem>`,
 * the path written as the input spells it (`runtimes.runc.path`, `mounts[3]`).
 *
 * @module
 */

import * as v from "valibot";
import { showValue } from "./identity.ts";

/** A problem finder in the style of identity.ts: null when the value is fine. */
export type Problem = (value: unknown) => string | null;

/**
 * A schema of type `T` that accepts what `problem` finds nothing wrong with; its message is
 * the problem (or "is required" for a missing value).
 */
export function rule<T>(
  problem: Problem,
): v.CustomSchema<T, v.ErrorMessage<v.CustomIssue> | undefined> {
  return v.custom<T>(
    (value) => value !== undefined && problem(value) === null,
    (issue) => issue.input === undefined ? "is required" : problem(issue.input) ?? "is not valid",
  );
}

/** Why `value` is not an integer from `min` to `max`; `unit` follows the bounds (" ms"). */
export function intProblem(min: number, max: number, unit = ""): Problem {
  return (value) =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max
      ? null
      : `must be an integer from ${min} to ${max}${unit}, got ${showValue(value)}`;
}

/** How a strict object speaks of its keys and of a value that is not an object. */
export interface StrictOptions {
  /** What a key is called: "field" in requests, "key" in files. */
  noun: string;
  /** The problem when the value is not an object; "must be an object, got …" unless given. */
  notObject?: (value: unknown) => string;
}

/**
 * A strict object schema (unknown keys are errors, naming the known ones) whose messages fit
 * {@linkcode parseShape}: "is required", "is not a known key (known: …)", "must be an object".
 * Arrays and null are not objects here.
 */
export function strict<const E extends v.ObjectEntries>(
  entries: E,
  options: StrictOptions,
): v.SchemaWithPipe<
  readonly [
    v.CustomSchema<
      v.InferInput<v.StrictObjectSchema<E, undefined>>,
      v.ErrorMessage<v.CustomIssue> | undefined
    >,
    v.StrictObjectSchema<E, v.ErrorMessage<v.StrictObjectIssue> | undefined>,
  ]
> {
  const known = Object.keys(entries).join(", ");
  const notObject = options.notObject ??
    ((value: unknown) => `must be an object, got ${showValue(value)}`);
  return v.pipe(
    v.custom<v.InferInput<v.StrictObjectSchema<E, undefined>>>(
      (value) => typeof value === "object" && value !== null && !Array.isArray(value),
      (issue) => notObject(issue.input),
    ),
    v.strictObject(
      entries,
      (issue) =>
        issue.expected === "never"
          ? `is not a known ${options.noun} (known: ${known})`
          : "is required",
    ),
  );
}

/**
 * Parses `input` with `schema`: the value, or the first problem as one line, `<path> <problem>`
 * (`subject` stands for the path when the problem is the input as a whole; "" for none).
 */
export function parseShape<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  subject: string,
): { ok: true; value: v.InferOutput<S> } | { ok: false; problem: string } {
  const result = v.safeParse(schema, input, { abortEarly: true });
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  // A strict object's own key problems (missing, unknown) name the key as a field; a bad key
  // of a map (a runtime's name) is named as it was written.
  const mapKey = issue.type !== "strict_object";
  const where = pathOf(issue.path, subject, mapKey);
  return { ok: false, problem: where === "" ? issue.message : `${where} ${issue.message}` };
}

function pathOf(
  path: readonly v.IssuePathItem[] | undefined,
  subject: string,
  mapKey: boolean,
): string {
  if (path === undefined || path.length === 0) return subject;
  let text = "";
  for (const [i, item] of path.entries()) {
    const key = item.key;
    if (mapKey && item.origin === "key" && i === path.length - 1) {
      return `${text}[${showValue(key)}] name`;
    }
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}
