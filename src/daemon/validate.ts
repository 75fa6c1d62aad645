/**
 * Validation of everything that arrives on the socket API: JSON bodies, ids in the path and
 * query parameters. Each body has one schema (valibot), its leaves identity.ts's rules, its
 * type checked against the API's request type; a parse returns a well-typed value or throws
 * an {@linkcode ApiError} 400 with a one-line reason that names the field. Unknown fields are
 * errors, not ignored, so a typo in a client (`"mount"` for `"mounts"`) is caught at once
 * instead of silently leaving a mount behind.
 *
 * @module
 */

import * as v from "valibot";
import {
  absolutePathProblem,
  idProblem,
  MAX_ID_LENGTH,
  pidProblem,
  ppidProblem,
  runtimeNameProblem,
  showValue,
  startTimeProblem,
} from "../identity.ts";
import { parseShape, rule, strict } from "../schema.ts";
import { ApiError, type CreateFifoRequest, type GcAddRequest, type MonitorRequest } from "./api.ts";

/** Longest wait a client may ask for: the longest delay a JS timer can hold (2^31 - 1 ms). */
export const MAX_WAIT_MS = 2 ** 31 - 1;
/** At most this many mounts or paths per container. */
const MAX_PATH_LIST = 1024;
/** Largest `limit` accepted on the event stream. */
const MAX_EVENT_LIMIT = 1_000_000;

/** An ApiError 400 with `message`. */
export function badRequest(message: string): ApiError {
  return new ApiError(400, message);
}

function nameProblem(value: unknown): string | null {
  if (typeof value !== "string") return `must be a string, got ${showValue(value)}`;
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    return `must be 1-${MAX_ID_LENGTH} characters, got ${value.length}`;
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    return `must not contain control characters, got ${showValue(value)}`;
  }
  return null;
}

/**
 * A list of absolute paths cleanup will unmount or remove. "/" is refused: no registration
 * may ever make the collector remove the root.
 */
function pathListProblem(value: unknown): string | null {
  if (!Array.isArray(value)) return `must be an array of absolute paths, got ${showValue(value)}`;
  if (value.length > MAX_PATH_LIST) {
    return `must have at most ${MAX_PATH_LIST} entries, got ${value.length}`;
  }
  return null;
}

function pathItemProblem(value: unknown): string | null {
  const problem = absolutePathProblem(value);
  if (problem !== null) return problem;
  return /^\/+$/.test(value as string) ? "must not be the root directory" : null;
}

const id = rule<string>(idProblem);
const runtime = rule<string>(runtimeNameProblem);
const path = rule<string>(absolutePathProblem);
const startTime = v.exactOptional(rule<number>(startTimeProblem));
const pathList = v.exactOptional(
  v.pipe(rule<unknown[]>(pathListProblem), v.array(rule<string>(pathItemProblem))),
);
const body = {
  noun: "field",
  notObject: (x: unknown) => `must be a JSON object, got ${showValue(x)}`,
};

function flagProblem(value: unknown): string | null {
  return typeof value === "boolean" ? null : `must be true or false, got ${showValue(value)}`;
}

const createFifoRequest = strict({ stateDir: path }, body);

const monitorRequest = strict({
  id,
  runtime,
  stateDir: path,
  pid: rule<number>(pidProblem),
  ppid: rule<number>(ppidProblem),
  name: v.exactOptional(rule<string>(nameProblem)),
  startTime,
  pStartTime: startTime,
  mounts: pathList,
  paths: pathList,
  memoryCgroup: v.exactOptional(path),
  createFifo: v.exactOptional(rule<boolean>(flagProblem)),
}, body);

const gcAddRequest = strict({
  id,
  runtime,
  pid: rule<number>(pidProblem),
  ppid: rule<number>(ppidProblem),
  startTime,
  pStartTime: startTime,
  stateDir: v.exactOptional(path),
  mounts: pathList,
  paths: pathList,
}, body);

// The schemas' types are the API's request types: a field added to one and not the other does
// not compile.
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false;
const sameTypes: [
  Same<v.InferOutput<typeof createFifoRequest>, CreateFifoRequest>,
  Same<v.InferOutput<typeof monitorRequest>, MonitorRequest>,
  Same<v.InferOutput<typeof gcAddRequest>, GcAddRequest>,
] = [true, true, true];
void sameTypes;

function parseBody<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = parseShape(schema, input, "request body");
  if (!result.ok) throw badRequest(result.problem);
  return result.value;
}

/**
 * Parses the text of a request body as JSON; 400 when it is not JSON.
 *
 * @example
 * ```ts
 * import { parseJson } from "./validate.ts";
 * parseJson('{"stateDir": "/x"}'); // { stateDir: "/x" }
 * ```
 */
export function parseJson(text: string): unknown {
  if (text.trim() === "") throw badRequest("request body is empty: expected a JSON object");
  try {
    return JSON.parse(text);
  } catch (e) {
    const reason = e instanceof Error ? e.message.replace(/\s+/g, " ") : String(e);
    throw badRequest(`request body is not valid JSON: ${reason}`);
  }
}

/** Validates the body of `POST /v1/fifos`. */
export function parseCreateFifoRequest(input: unknown): CreateFifoRequest {
  return parseBody(createFifoRequest, input);
}

/** Validates the body of `POST /v1/containers`. */
export function parseMonitorRequest(input: unknown): MonitorRequest {
  return parseBody(monitorRequest, input);
}

/** Validates the body of `POST /v1/gc`. */
export function parseGcAddRequest(input: unknown): GcAddRequest {
  return parseBody(gcAddRequest, input);
}

/**
 * Decodes and validates a container id taken from a URL path segment (still percent-encoded).
 * `%2F` decodes to `/` and is then refused like any other bad id.
 */
export function parseIdSegment(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw badRequest(`container id in the path is not valid percent-encoding: ${showValue(raw)}`);
  }
  const problem = idProblem(decoded);
  if (problem !== null) throw badRequest(`container id ${problem}`);
  return decoded;
}

/** Refuses query parameters a route does not know, and repeated ones. */
export function checkQuery(params: URLSearchParams, known: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!known.includes(key)) {
      const allowed = known.length === 0 ? "none" : known.join(", ");
      throw badRequest(`unknown query parameter ${showValue(key)} (known: ${allowed})`);
    }
    if (seen.has(key)) throw badRequest(`query parameter ${showValue(key)} is repeated`);
    seen.add(key);
  }
}

/**
 * `?timeout=<seconds>` of the wait route (decimal seconds, fractions allowed) as ms. Absent
 * means as long as a timer can wait ({@linkcode MAX_WAIT_MS}).
 */
export function parseWaitQuery(params: URLSearchParams): { timeoutMs: number } {
  checkQuery(params, ["timeout"]);
  const raw = params.get("timeout");
  if (raw === null) return { timeoutMs: MAX_WAIT_MS };
  if (!/^\d{1,10}(\.\d{1,6})?$/.test(raw)) {
    throw badRequest(`timeout must be a non-negative number of seconds, got ${showValue(raw)}`);
  }
  const ms = Math.round(Number(raw) * 1000);
  if (ms > MAX_WAIT_MS) {
    throw badRequest(
      `timeout must be at most ${Math.floor(MAX_WAIT_MS / 1000)} seconds, got ${raw}`,
    );
  }
  return { timeoutMs: ms };
}

/** The event stream's parameters. */
export interface EventsQuery {
  /** Events with a seq greater than this. */
  since: number;
  /** Keep the stream open and send new events as they come. */
  follow: boolean;
  /** Stop after this many events; Infinity when not given. */
  limit: number;
}

function nonNegativeInt(raw: string, what: string, max: number): number {
  if (!/^\d{1,16}$/.test(raw) || Number(raw) > max) {
    throw badRequest(`${what} must be an integer from 0 to ${max}, got ${showValue(raw)}`);
  }
  return Number(raw);
}

/** `?since=<seq>&follow=1&limit=<n>` of `GET /v1/events`. */
export function parseEventsQuery(params: URLSearchParams): EventsQuery {
  checkQuery(params, ["since", "follow", "limit"]);
  const since = params.get("since");
  const follow = params.get("follow");
  const limit = params.get("limit");
  let followFlag = false;
  if (follow !== null) {
    if (["1", "true", ""].includes(follow)) followFlag = true;
    else if (!["0", "false"].includes(follow)) {
      throw badRequest(`follow must be 1, 0, true or false, got ${showValue(follow)}`);
    }
  }
  let limitValue = Infinity;
  if (limit !== null) {
    limitValue = nonNegativeInt(limit, "limit", MAX_EVENT_LIMIT);
    if (limitValue === 0) throw badRequest("limit must be at least 1, got 0");
  }
  return {
    since: since === null ? 0 : nonNegativeInt(since, "since", Number.MAX_SAFE_INTEGER),
    follow: followFlag,
    limit: limitValue,
  };
}
