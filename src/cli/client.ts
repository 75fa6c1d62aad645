/**
 * The socket API's client: `fetch` over the daemon's unix socket
 * (`Deno.createHttpClient({ proxy: { transport: "unix", path } })`). The CLI uses nothing else
 * to reach the daemon.
 *
 * @module
 */

import type {
  CreateFifoResponse,
  GcAddRequest,
  GcStatus,
  Health,
  MonitorRequest,
} from "../daemon/api.ts";
import type { ReaperEvent } from "../store/events.ts";
import type { ContainerRecord } from "../types.ts";
import { errorMessage } from "../error_message.ts";

/** The daemon could not be reached at all (not running, no permission, wrong path). */
export class DaemonUnreachableError extends Error {
  /** The socket that was tried. */
  readonly socket: string;
  /** The operating system's reason ("Connection refused (os error 111)"). */
  readonly detail: string;
  constructor(socket: string, detail: string) {
    super(`cannot reach the daemon at ${socket}: ${detail}`);
    this.name = "DaemonUnreachableError";
    this.socket = socket;
    this.detail = detail;
  }
  /** True when the socket exists but this user may not use it. */
  get permissionDenied(): boolean {
    return /permission denied|os error 13/i.test(this.detail);
  }
}

/** The daemon answered with an error status and its one-line reason. */
export class DaemonError extends Error {
  /** The HTTP status (400 bad request, 404 unknown id…). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "DaemonError";
    this.status = status;
  }
}

/** Options of {@linkcode ReaperClient.events}. */
export interface EventsOptions {
  /** Only events with a seq greater than this. */
  since?: number;
  /** Keep reading new events as they come. */
  follow?: boolean;
  /** Stop after this many events. */
  limit?: number;
  /** Stops the stream. */
  signal?: AbortSignal;
}

/**
 * The URL's host is never used for routing (the proxy is the socket), but Deno still resolves
 * a name through DNS before connecting: with no DNS server, "http://reaperd" stalls 5 s every
 * couple of dozen connections. An IP literal needs no lookup.
 */
const ORIGIN = "http://127.0.0.1";

/** Records per page when listing. */
const LIST_PAGE = 500;

function causeMessage(e: unknown): string {
  let cur: unknown = e;
  let message = errorMessage(e);
  while (cur instanceof Error && cur.cause !== undefined) {
    cur = cur.cause;
    if (cur instanceof Error) message = cur.message;
  }
  // "error sending request for url (…): client error (Connect): Connection refused (os error 111)"
  const osError = /:\s*([^:]*\(os error \d+\))\s*$/.exec(message);
  return osError ? osError[1]! : message;
}

/**
 * Talks to the reaperd daemon on its unix socket. Close it when done (it holds a connection
 * pool).
 *
 * @example
 * ```ts ignore
 * using client = new ReaperClient("/run/reaperd/reaperd.sock");
 * const record = await client.inspect("web-1");
 * ```
 */
export class ReaperClient implements Disposable {
  /** The socket this client talks to. */
  readonly socket: string;
  #http: Deno.HttpClient;

  constructor(socket: string) {
    this.socket = socket;
    this.#http = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  }

  /** Releases the connection pool. */
  close(): void {
    this.#http.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #fetch(method: string, path: string, body?: unknown, signal?: AbortSignal) {
    const init: RequestInit & { client: Deno.HttpClient } = { method, client: this.#http };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    if (signal !== undefined) init.signal = signal;
    let response: Response;
    try {
      response = await fetch(`${ORIGIN}${path}`, init);
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new DaemonUnreachableError(this.socket, causeMessage(e));
    }
    if (!response.ok) {
      const text = await response.text();
      let message = text.trim() || response.statusText;
      try {
        const parsed = JSON.parse(text);
        if (typeof parsed?.error === "string") message = parsed.error;
      } catch {
        // Not JSON: keep the text as it came.
      }
      throw new DaemonError(response.status, message);
    }
    return response;
  }

  async #json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.#fetch(method, path, body, signal);
    return await response.json() as T;
  }

  /** `GET /v1/health`. */
  health(): Promise<Health> {
    return this.#json("GET", "/v1/health");
  }

  /** `GET /metrics`: Prometheus text. */
  async metrics(): Promise<string> {
    return await (await this.#fetch("GET", "/metrics")).text();
  }

  /** `POST /v1/fifos`: the daemon creates the FIFO and holds its read end. */
  createFifo(stateDir: string): Promise<CreateFifoResponse> {
    return this.#json("POST", "/v1/fifos", { stateDir });
  }

  /** `POST /v1/containers`: monitor a started container. */
  monitor(request: MonitorRequest): Promise<ContainerRecord> {
    return this.#json("POST", "/v1/containers", request);
  }

  /** `GET /v1/containers/{id}`. */
  inspect(id: string): Promise<ContainerRecord> {
    return this.#json("GET", `/v1/containers/${encodeURIComponent(id)}`);
  }

  /** `DELETE /v1/containers/{id}`: forget a stopped container's record; the record. */
  remove(id: string): Promise<ContainerRecord> {
    return this.#json("DELETE", `/v1/containers/${encodeURIComponent(id)}`);
  }

  /**
   * Every record, in id order, read a page at a time (`GET /v1/containers?limit=&after=`), so
   * that a daemon with many records never builds one huge answer.
   */
  async list(pageSize = LIST_PAGE): Promise<ContainerRecord[]> {
    const all: ContainerRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const query = new URLSearchParams({ limit: String(pageSize) });
      if (after !== undefined) query.set("after", after);
      const page = await this.#json<ContainerRecord[]>("GET", `/v1/containers?${query}`);
      all.push(...page);
      if (page.length < pageSize) return all;
      after = page[page.length - 1]!.id;
    }
  }

  /**
   * `GET /v1/containers/{id}/wait`: resolves with the record once the exit is recorded, or
   * as it is after `timeoutSeconds` (its `exit` is then still null).
   */
  wait(id: string, timeoutSeconds?: number, signal?: AbortSignal): Promise<ContainerRecord> {
    const query = timeoutSeconds === undefined ? "" : `?timeout=${timeoutSeconds}`;
    return this.#json(
      "GET",
      `/v1/containers/${encodeURIComponent(id)}/wait${query}`,
      undefined,
      signal,
    );
  }

  /** `POST /v1/gc`. */
  gcAdd(request: GcAddRequest): Promise<GcStatus> {
    return this.#json("POST", "/v1/gc", request);
  }

  /** `GET /v1/gc`. */
  gcList(): Promise<GcStatus[]> {
    return this.#json("GET", "/v1/gc");
  }

  /** `POST /v1/gc/{id}/retry`: the next attempt is due now. */
  gcRetry(id: string): Promise<GcStatus> {
    return this.#json("POST", `/v1/gc/${encodeURIComponent(id)}/retry`);
  }

  /** `GET /v1/gc/{id}`; a {@linkcode DaemonError} 404 when the container is not in GC. */
  gcStatus(id: string): Promise<GcStatus> {
    return this.#json("GET", `/v1/gc/${encodeURIComponent(id)}`);
  }

  /** `GET /v1/events`: yields events, oldest first, until the stream ends or is aborted. */
  async *events(options: EventsOptions = {}): AsyncGenerator<ReaperEvent> {
    const params = new URLSearchParams();
    if (options.since !== undefined) params.set("since", String(options.since));
    if (options.follow) params.set("follow", "1");
    if (options.limit !== undefined) params.set("limit", String(options.limit));
    const query = params.size > 0 ? `?${params}` : "";
    const response = await this.#fetch("GET", `/v1/events${query}`, undefined, options.signal);
    if (response.body === null) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      while (true) {
        let chunk: ReadableStreamReadResult<string>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (options.signal?.aborted) return;
          throw new DaemonUnreachableError(this.socket, `event stream broke: ${causeMessage(e)}`);
        }
        if (chunk.done) break;
        buffer += chunk.value;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line !== "") yield JSON.parse(line) as ReaperEvent;
        }
      }
      if (buffer.trim() !== "") yield JSON.parse(buffer) as ReaperEvent;
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
}
