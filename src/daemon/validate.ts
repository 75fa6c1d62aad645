/**
 * Validation of everything that arrives on the socket API: JSON bodies, ids in the path and
 * query parameters. Pure functions: each returns a well-typed value or throws an
 * {@linkcode ApiError} 400 with a one-line reason that names the field. Unknown fields are
 * errors, not ignored, so a typo in a client (`"mount"` for `"mounts"`) is caught at once
 * instead of silently leaving a mount behind.
 *
 * @module
 */

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
import { ApiError, type CreateFifoRequest, type GcAddRequest, type MonitorRequest } from "./api.ts";

/** Longest wait a client may ask for: the longest delay a JS timer can hold (2^31 - 1 ms). */
export const MAX_WAIT_MS = 2 ** 31 - 1;
/** At most this many mounts or paths per container. */
export const MAX_PATH_LIST = 1024;
/** Largest `limit` accepted on the event stream. */
export const MAX_EVENT_LIMIT = 1_000_000;

/** An ApiError 400 with `message`. */
export function badRequest(message: string): ApiError {
  return new ApiError(400, message);
}

type Obj = Record<string, unknown>;

function asObject(body: unknown, what: string): Obj {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest(`${what} must be a JSON object, got ${showValue(body)}`);
  }
  return body as Obj;
}

function noUnknownFields(obj: Obj, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      throw badRequest(`unknown field ${showValue(key)} (known: ${known.join(", ")})`);
    }
  }
}

function field<T>(problem: string | null, name: string, value: unknown): T {
  if (problem !== null) throw badRequest(`${name} ${problem}`);
  return value as T;
}

function id(value: unknown, name = "id"): string {
  if (value === undefined) throw badRequest(`${name} is required`);
  return field<string>(idProblem(value), name, value);
}

function runtime(value: unknown): string {
  if (value === undefined) throw badRequest("runtime is required");
  return field<string>(runtimeNameProblem(value), "runtime", value);
}

function path(value: unknown, name: string): string {
  if (value === undefined) throw badRequest(`${name} is required`);
  return field<string>(absolutePathProblem(value), name, value);
}

function pid(value: unknown, name: string): number {
  if (value === undefined) throw badRequest(`${name} is required`);
  return field<number>(pidProblem(value), name, value);
}

/** The shim's pid may be 0 ("no shim", types.ts PidInfo), never negative. */
function ppid(value: unknown): number {
  if (value === undefined) throw badRequest("ppid is required");
  return field<number>(ppidProblem(value), "ppid", value);
}

function startTime(value: unknown, name: string): number {
  return field<number>(startTimeProblem(value), name, value);
}

function name(value: unknown): string {
  if (typeof value !== "string") throw badRequest(`name must be a string, got ${showValue(value)}`);
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw badRequest(`name must be 1-${MAX_ID_LENGTH} characters, got ${value.length}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(`name must not contain control characters, got ${showValue(value)}`);
  }
  return value;
}

/**
 * A list of absolute paths cleanup will unmount or remove. "/" is refused: no registration
 * may ever make the collector remove the root.
 */
function pathList(value: unknown, fieldName: string): string[] {
  if (!Array.isArray(value)) {
    throw badRequest(`${fieldName} must be an array of absolute paths, got ${showValue(value)}`);
  }
  if (value.length > MAX_PATH_LIST) {
    throw badRequest(
      `${fieldName} must have at most ${MAX_PATH_LIST} entries, got ${value.length}`,
    );
  }
  return value.map((p, i) => {
    const item = path(p, `${fieldName}[${i}]`);
    if (/^\/+$/.test(item)) throw badRequest(`${fieldName}[${i}] must not be the root directory`);
    return item;
  });
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

const CREATE_FIFO_FIELDS = ["stateDir"] as const;

/** Validates the body of `POST /v1/fifos`. */
export function parseCreateFifoRequest(body: unknown): CreateFifoRequest {
  const obj = asObject(body, "request body");
  noUnknownFields(obj, CREATE_FIFO_FIELDS);
  return { stateDir: path(obj.stateDir, "stateDir") };
}

const MONITOR_FIELDS = [
  "id",
  "runtime",
  "stateDir",
  "pid",
  "ppid",
  "name",
  "startTime",
  "pStartTime",
  "mounts",
  "paths",
  "memoryCgroup",
] as const;

/** Validates the body of `POST /v1/containers`. */
export function parseMonitorRequest(body: unknown): MonitorRequest {
  const obj = asObject(body, "request body");
  noUnknownFields(obj, MONITOR_FIELDS);
  const req: MonitorRequest = {
    id: id(obj.id),
    runtime: runtime(obj.runtime),
    stateDir: path(obj.stateDir, "stateDir"),
    pid: pid(obj.pid, "pid"),
    ppid: ppid(obj.ppid),
  };
  if (obj.name !== undefined) req.name = name(obj.name);
  if (obj.memoryCgroup !== undefined) req.memoryCgroup = path(obj.memoryCgroup, "memoryCgroup");
  return withOptionalFields(obj, req);
}

const GC_ADD_FIELDS = [
  "id",
  "runtime",
  "pid",
  "ppid",
  "startTime",
  "pStartTime",
  "stateDir",
  "mounts",
  "paths",
] as const;

/** Validates the body of `POST /v1/gc`. */
export function parseGcAddRequest(body: unknown): GcAddRequest {
  const obj = asObject(body, "request body");
  noUnknownFields(obj, GC_ADD_FIELDS);
  const req: GcAddRequest = {
    id: id(obj.id),
    runtime: runtime(obj.runtime),
    pid: pid(obj.pid, "pid"),
    ppid: ppid(obj.ppid),
  };
  if (obj.stateDir !== undefined) req.stateDir = path(obj.stateDir, "stateDir");
  return withOptionalFields(obj, req);
}

/** The optional fields monitor and gc add share: start times, mounts and paths. */
function withOptionalFields<R extends MonitorRequest | GcAddRequest>(obj: Obj, req: R): R {
  if (obj.startTime !== undefined) req.startTime = startTime(obj.startTime, "startTime");
  if (obj.pStartTime !== undefined) req.pStartTime = startTime(obj.pStartTime, "pStartTime");
  if (obj.mounts !== undefined) req.mounts = pathList(obj.mounts, "mounts");
  if (obj.paths !== undefined) req.paths = pathList(obj.paths, "paths");
  return req;
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
  return id(decoded, "container id");
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
