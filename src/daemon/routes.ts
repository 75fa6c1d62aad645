/**
 * The socket API's routes: turns an HTTP request into one {@linkcode ReaperApi} call and its
 * result into JSON. Knows nothing of sockets (see `http.ts`), so it can be driven with plain
 * `Request` objects.
 *
 * Every failure becomes `{ "error": "one-line reason" }` with a 4xx or 5xx status; nothing a
 * client sends can throw past {@linkcode createRouter}'s handler, so one bad client never stops
 * the daemon from answering the next.
 *
 * | method | path | body | answer | errors |
 * | --- | --- | --- | --- | --- |
 * | GET | /v1/health | | Health | |
 * | GET | /metrics | | Prometheus text | |
 * | POST | /v1/fifos | CreateFifoRequest | CreateFifoResponse | 400, 413, 503 |
 * | POST | /v1/containers | MonitorRequest | ContainerRecord (201) | 400, 409, 413, 503 |
 * | GET | /v1/containers?limit=&after= | | ContainerRecord[] (all, or a page, in id order) | 400, 503 |
 * | GET | /v1/containers/{id} | | ContainerRecord | 400, 404, 503 |
 * | DELETE | /v1/containers/{id} | | ContainerRecord (forgotten) | 400, 404, 409, 503 |
 * | GET | /v1/containers/{id}/wait?timeout=s | | ContainerRecord (long poll) | 400, 404, 503 |
 * | POST | /v1/gc | GcAddRequest | GcStatus | 400, 409, 413, 503 |
 * | GET | /v1/gc | | GcStatus[] | 503 |
 * | GET | /v1/gc/{id} | | GcStatus | 400, 404, 503 |
 * | POST | /v1/gc/{id}/retry | | GcStatus | 400, 404, 409, 503 |
 * | GET | /v1/events?since=&follow=1&limit= | | NDJSON of ReaperEvent | 400, 503 |
 *
 * Every route may also answer 404 (no such route), 405 (method not allowed, with `Allow`) and
 * 500 (a bug in reaperd, logged). 409: the container's state forbids it now; 503: reaperd is
 * shutting down or its store cannot be written now (retry later).
 *
 * @module
 */

import { oneLine } from "../config.ts";
import { getLogger } from "../log.ts";
import { StoreUnavailableError } from "../store/errors.ts";
import { ApiError, type ReaperApi } from "./api.ts";
import { parseListQuery, serializeArray } from "./list_response.ts";
import { bytesResponse } from "./raw_body.ts";
import {
  badRequest,
  checkQuery,
  parseCreateFifoRequest,
  parseEventsQuery,
  parseGcAddRequest,
  parseIdSegment,
  parseJson,
  parseMonitorRequest,
  parseWaitQuery,
} from "./validate.ts";
import { errorMessage } from "../error_message.ts";

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Events read from the API per call while streaming. */
const EVENT_PAGE_SIZE = 500;

/** Options of {@linkcode createRouter}. */
export interface RouterOptions {
  /** Largest request body accepted (bytes); {@linkcode MAX_BODY_BYTES} by default. */
  maxBodyBytes?: number;
  /** Events read per API call while streaming; {@linkcode EVENT_PAGE_SIZE} by default. */
  eventPageSize?: number;
  /** Aborted when the server shuts down: long polls and event streams end then. */
  closing?: AbortSignal;
}

/** A request handler for `Deno.serve`. */
export type RequestHandler = (request: Request) => Promise<Response>;

interface Context {
  request: Request;
  url: URL;
  /** Decoded, validated ids from the path, in order. */
  ids: string[];
}

type Handler = (ctx: Context) => Promise<Response> | Response;

interface Route {
  /** Path segments; "{id}" matches one container id. */
  pattern: string[];
  methods: Record<string, Handler>;
}

const log = getLogger("http");
const encoder = new TextEncoder();

/** A JSON response; the trailing newline keeps `curl` output tidy. */
function jsonResponse(status: number, body: unknown, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(`${JSON.stringify(body)}\n`, { status, headers: h });
}

/** The error body every failure uses. */
function errorResponse(status: number, message: string, headers?: HeadersInit): Response {
  return jsonResponse(status, { error: oneLine(message) || "error" }, headers);
}

/** Reads the body as text, refusing anything over `max` bytes before it is all in memory. */
async function readBody(request: Request, max: number): Promise<string> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    throw new ApiError(413, `request body is larger than ${max} bytes`);
  }
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new ApiError(413, `request body is larger than ${max} bytes`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw badRequest(`cannot read the request body: ${errorMessage(e)}`);
  }
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw badRequest("request body is not valid UTF-8");
  }
}

/**
 * Builds the handler that serves the API for `api`. The handler never throws: every error is
 * answered with `{ "error": … }` and logged when it is the daemon's fault (5xx).
 */
export function createRouter(api: ReaperApi, options: RouterOptions = {}): RequestHandler {
  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const pageSize = options.eventPageSize ?? EVENT_PAGE_SIZE;
  const closing = options.closing ?? new AbortController().signal;
  /** Requests answered, by status code, for /metrics. */
  const requests = new Map<string, number>();

  const noQuery = (ctx: Context) => checkQuery(ctx.url.searchParams, []);
  const body = async (ctx: Context) => parseJson(await readBody(ctx.request, maxBody));

  const httpMetrics = (): string => {
    const lines = [
      "# HELP reaperd_http_requests_total Socket API requests answered, by status code.",
      "# TYPE reaperd_http_requests_total counter",
    ];
    for (const [code, n] of [...requests].sort()) {
      lines.push(`reaperd_http_requests_total{code="${code}"} ${n}`);
    }
    return lines.join("\n") + "\n";
  };

  const routes: Route[] = [
    {
      pattern: ["v1", "health"],
      methods: {
        GET: (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, api.health());
        },
      },
    },
    {
      pattern: ["metrics"],
      methods: {
        GET: (ctx) => {
          noQuery(ctx);
          let text = api.metrics();
          if (text !== "" && !text.endsWith("\n")) text += "\n";
          return new Response(text + httpMetrics(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        },
      },
    },
    {
      pattern: ["v1", "fifos"],
      methods: {
        POST: async (ctx) => {
          noQuery(ctx);
          const req = parseCreateFifoRequest(await body(ctx));
          return jsonResponse(200, await api.createFifo(req));
        },
      },
    },
    {
      pattern: ["v1", "containers"],
      methods: {
        GET: async (ctx) => {
          const records = await api.list(parseListQuery(ctx.url.searchParams));
          return bytesResponse(await serializeArray(records), {
            headers: { "content-type": "application/json; charset=utf-8" },
          });
        },
        POST: async (ctx) => {
          noQuery(ctx);
          const req = parseMonitorRequest(await body(ctx));
          return jsonResponse(201, await api.monitor(req));
        },
      },
    },
    {
      pattern: ["v1", "containers", "{id}"],
      methods: {
        GET: async (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, await api.inspect(ctx.ids[0]!));
        },
        DELETE: async (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, await api.remove(ctx.ids[0]!));
        },
      },
    },
    {
      pattern: ["v1", "containers", "{id}", "wait"],
      methods: {
        GET: async (ctx) => {
          const { timeoutMs } = parseWaitQuery(ctx.url.searchParams);
          // The client hanging up or the daemon stopping both end the long poll.
          const signal = AbortSignal.any([ctx.request.signal, closing]);
          try {
            const record = await api.wait(ctx.ids[0]!, timeoutMs, signal);
            // The daemon ends a wait early when it stops: that is no answer about the exit.
            if (closing.aborted && record.state === "running") throw new Error("cut short");
            return jsonResponse(200, record);
          } catch (e) {
            if (signal.aborted && !(e instanceof ApiError)) {
              throw new ApiError(503, "the wait was cut short: reaperd is shutting down");
            }
            throw e;
          }
        },
      },
    },
    {
      pattern: ["v1", "gc"],
      methods: {
        GET: async (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, await api.gcList());
        },
        POST: async (ctx) => {
          noQuery(ctx);
          const req = parseGcAddRequest(await body(ctx));
          return jsonResponse(200, await api.gcAdd(req));
        },
      },
    },
    {
      pattern: ["v1", "gc", "{id}"],
      methods: {
        GET: async (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, await api.gcStatus(ctx.ids[0]!));
        },
      },
    },
    {
      pattern: ["v1", "gc", "{id}", "retry"],
      methods: {
        POST: async (ctx) => {
          noQuery(ctx);
          return jsonResponse(200, await api.gcRetry(ctx.ids[0]!));
        },
      },
    },
    {
      pattern: ["v1", "events"],
      methods: {
        GET: (ctx) => {
          const query = parseEventsQuery(ctx.url.searchParams);
          return eventStream(api, query, pageSize, [ctx.request.signal, closing]);
        },
      },
    },
  ];

  const match = (segments: string[]): { route: Route; ids: string[] } | null => {
    for (const route of routes) {
      if (route.pattern.length !== segments.length) continue;
      const ids: string[] = [];
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const want = route.pattern[i]!;
        if (want === "{id}") ids.push(segments[i]!);
        else ok = want === segments[i];
      }
      if (ok) return { route, ids };
    }
    return null;
  };

  const dispatch = async (request: Request): Promise<Response> => {
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      throw badRequest("malformed request URL");
    }
    const segments = url.pathname.split("/").slice(1);
    const found = match(segments);
    if (found === null) throw new ApiError(404, `no such route: ${request.method} ${url.pathname}`);
    const handler = found.route.methods[request.method];
    if (handler === undefined) {
      const allow = Object.keys(found.route.methods).join(", ");
      return errorResponse(
        405,
        `method ${request.method} is not allowed here (allowed: ${allow})`,
        {
          allow,
        },
      );
    }
    // Ids are validated only once the route is known, so a bad id on a real route is a 400.
    const ids = found.ids.map(parseIdSegment);
    return await handler({ request, url, ids });
  };

  return async (request: Request): Promise<Response> => {
    const started = performance.now();
    let response: Response;
    try {
      response = await dispatch(request);
    } catch (e) {
      if (e instanceof ApiError) {
        response = errorResponse(e.status, e.message);
      } else if (e instanceof StoreUnavailableError) {
        // A read the store could not serve now: the client may try again.
        response = errorResponse(503, e.message);
      } else {
        const message = errorMessage(e);
        log.error("request failed: {method} {path}: {error}", {
          method: request.method,
          path: safePath(request.url),
          error: message,
          stack: e instanceof Error ? e.stack : undefined,
        });
        response = errorResponse(500, `internal error: ${message}`);
      }
    }
    const code = String(response.status);
    requests.set(code, (requests.get(code) ?? 0) + 1);
    log.debug("{method} {path} {status}", {
      method: request.method,
      path: safePath(request.url),
      status: response.status,
      ms: Math.round(performance.now() - started),
    });
    return response;
  };
}

function safePath(url: string): string {
  try {
    const u = new URL(url);
    const p = u.pathname + u.search;
    return p.length > 200 ? `${p.slice(0, 200)}…` : p;
  } catch {
    return "?";
  }
}

/**
 * The NDJSON event stream: pages through the log from `since`, then (with follow) waits for
 * new events. Ends on the limit, at the end of the log without follow, or when a signal
 * aborts (client gone, server closing).
 */
function eventStream(
  api: ReaperApi,
  query: { since: number; follow: boolean; limit: number },
  pageSize: number,
  signals: AbortSignal[],
): Response {
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, ...signals]);
  let cursor = query.since;
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (!signal.aborted) {
          const want = Math.min(pageSize, query.limit - sent);
          if (want <= 0) break;
          const batch = await api.events(cursor, want);
          if (batch.length > 0) {
            const text = batch.map((e) => JSON.stringify(e) + "\n").join("");
            cursor = batch[batch.length - 1]!.seq;
            sent += batch.length;
            controller.enqueue(encoder.encode(text));
            return;
          }
          if (!query.follow) break;
          await api.waitForEvents(cursor, signal).catch((e) => {
            if (!signal.aborted) throw e;
          });
        }
        controller.close();
      } catch (e) {
        // Headers are gone already: all that is left is to log and cut the stream.
        log.error("event stream failed: {error}", {
          error: errorMessage(e),
        });
        controller.error(e);
      }
    },
    cancel() {
      stop.abort();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store" },
  });
}
