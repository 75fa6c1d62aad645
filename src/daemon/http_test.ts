import assert from "node:assert/strict";
import { DaemonError, ReaperClient } from "../cli/client.ts";
import { FakeApi } from "./_fake_api.ts";
import { claimSocketPath, type HttpServer, SocketInUseError, startHttpServer } from "./http.ts";
import { prioritizeReads } from "./read_priority.ts";

interface Harness {
  api: FakeApi;
  server: HttpServer;
  client: ReaperClient;
  raw(method: string, path: string, body?: BodyInit): Promise<{ status: number; body: unknown }>;
  dir: string;
}

async function withServer(fn: (h: Harness) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const api = new FakeApi();
  const server = await startHttpServer(api, { path: `${dir}/run/reaperd.sock` });
  const client = new ReaperClient(server.path);
  const http = Deno.createHttpClient({ proxy: { transport: "unix", path: server.path } });
  const raw = async (method: string, path: string, body?: BodyInit) => {
    const init: RequestInit & { client: Deno.HttpClient } = { method, client: http };
    if (body !== undefined) init.body = body;
    const r = await fetch(`http://127.0.0.1${path}`, init);
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Prometheus text, kept as it is.
    }
    return { status: r.status, body: parsed };
  };
  try {
    await fn({ api, server, client, raw, dir });
  } finally {
    client.close();
    http.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const monitorBody = {
  id: "c1",
  runtime: "runc",
  stateDir: "/var/run/isulad/runc/c1",
  pid: 4242,
  ppid: 4241,
};

Deno.test("startHttpServer() listens on a 0600 socket in a 0700 dir it creates", async () => {
  await withServer(async ({ server, dir, raw }) => {
    assert.equal((await Deno.stat(server.path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/run`)).mode! & 0o777, 0o700);
    const r = await raw("GET", "/v1/health");
    assert.equal(r.status, 200);
    assert.equal((r.body as { status: string }).status, "ok");
  });
});

Deno.test("startHttpServer() refuses a socket another server answers on", async () => {
  await withServer(async ({ server, api }) => {
    await assert.rejects(startHttpServer(api, { path: server.path }), SocketInUseError);
    await assert.rejects(claimSocketPath(server.path), SocketInUseError);
  });
});

Deno.test("claimSocketPath() removes a stale socket and refuses a regular file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/stale.sock`;
    // A child that binds then dies by SIGKILL leaves a socket nobody answers on.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} });
         Deno.stdout.writeSync(new Uint8Array([10])); setTimeout(() => {}, 60000);`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    await reader.read();
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.ok((await Deno.lstat(path)).isSocket);
    await claimSocketPath(path);
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
    await claimSocketPath(path); // nothing there is fine too

    await Deno.writeTextFile(path, "precious");
    await assert.rejects(claimSocketPath(path), /is not a socket: refusing to replace it/);
    assert.equal(await Deno.readTextFile(path), "precious");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every route answers through the client", async () => {
  await withServer(async ({ api, client }) => {
    assert.deepEqual(await client.createFifo("/var/run/isulad/runc/c1"), {
      fifo: "/var/run/isulad/runc/c1/exit_fifo",
    });
    const rec = await client.monitor({ ...monitorBody, mounts: ["/m"], name: "web" });
    assert.equal(rec.state, "running");
    assert.equal(rec.name, "web");
    assert.deepEqual((await client.inspect("c1")).mounts, ["/m"]);
    assert.deepEqual((await client.list()).map((r) => r.id), ["c1"]);

    // An immediate timeout returns the record still running.
    assert.equal((await client.wait("c1", 0)).exit, null);
    const waiting = client.wait("c1", 30);
    setTimeout(() => api.exit("c1", 3), 50);
    const done = await waiting;
    assert.equal(done.exit?.code, 3);
    assert.equal(done.state, "stopping");

    const gc = await client.gcAdd({ id: "c2", runtime: "crun", pid: 10, ppid: 9 });
    assert.equal(gc.entry.id, "c2");
    assert.deepEqual((await client.gcList()).map((s) => s.record.id), ["c2"]);
    assert.equal((await client.gcStatus("c2")).record.state, "gc");
    await assert.rejects(
      client.gcStatus("c1"),
      (e: Error) => e instanceof DaemonError && e.status === 404,
    );

    const events = [];
    for await (const e of client.events()) events.push(e);
    assert.deepEqual(events.map((e) => [e.seq, e.kind, e.id]), [
      [1, "monitor", "c1"],
      [2, "exit", "c1"],
      [3, "gc", "c2"],
    ]);
    const later = [];
    for await (const e of client.events({ since: 1, limit: 1 })) later.push(e.seq);
    assert.deepEqual(later, [2]);

    assert.equal((await client.health()).gc, 1);
    const metrics = await client.metrics();
    assert.match(metrics, /^reaperd_monitored_containers 0$/m);
    assert.match(metrics, /^reaperd_http_requests_total\{code="200"\} \d+$/m);
  });
});

Deno.test("GET /v1/events pages through more events than one API call returns", async () => {
  const dir = await Deno.makeTempDir();
  const api = new FakeApi();
  const server = await startHttpServer(api, { path: `${dir}/s.sock`, eventPageSize: 3 });
  const client = new ReaperClient(server.path);
  try {
    for (let i = 0; i < 10; i++) {
      await api.monitor({ ...monitorBody, id: `c${i}` });
    }
    const seqs = [];
    for await (const e of client.events()) seqs.push(e.seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const limited = [];
    for await (const e of client.events({ since: 2, limit: 5 })) limited.push(e.seq);
    assert.deepEqual(limited, [3, 4, 5, 6, 7]);
  } finally {
    client.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GET /v1/events?follow=1 streams new events and ends when the client leaves", async () => {
  await withServer(async ({ api, client }) => {
    await api.monitor(monitorBody);
    const abort = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of client.events({ follow: true, signal: abort.signal })) {
        seen.push(`${e.seq}:${e.kind}`);
        if (e.kind === "exit") abort.abort();
      }
    })();
    while (api.pendingEventWaits === 0) await new Promise((r) => setTimeout(r, 10));
    api.exit("c1", 0);
    await reading;
    assert.deepEqual(seen, ["1:monitor", "2:exit"]);
    // The server noticed the client leaving and stopped waiting for events.
    for (let i = 0; i < 200 && api.pendingEventWaits > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(api.pendingEventWaits, 0);
  });
});

Deno.test("a long poll ends when the client disconnects", async () => {
  await withServer(async ({ api, client }) => {
    await api.monitor(monitorBody);
    const abort = new AbortController();
    const waiting = client.wait("c1", 60, abort.signal);
    while (api.pendingWaits === 0) await new Promise((r) => setTimeout(r, 10));
    abort.abort();
    await assert.rejects(waiting);
    for (let i = 0; i < 200 && api.pendingWaits > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(api.pendingWaits, 0);
  });
});

Deno.test("shutdown() ends pending long polls and follow streams", async () => {
  const dir = await Deno.makeTempDir();
  const api = new FakeApi();
  const server = await startHttpServer(api, { path: `${dir}/s.sock` });
  const client = new ReaperClient(server.path);
  try {
    await api.monitor(monitorBody);
    const waiting = client.wait("c1", 600).then(
      () => "resolved",
      (e) => e instanceof DaemonError ? `${e.status}` : "broken",
    );
    const following = (async () => {
      let n = 0;
      for await (const _ of client.events({ follow: true })) n++;
      return n;
    })().catch(() => -1);
    while (api.pendingWaits === 0 || api.pendingEventWaits === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const started = Date.now();
    await server.shutdown();
    assert.ok(Date.now() - started < 5000, "shutdown must not wait for the long poll");
    assert.equal(await waiting, "503");
    assert.equal(await following, 1);
    await assert.rejects(Deno.lstat(server.path), Deno.errors.NotFound);
  } finally {
    client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("routes answer 404, 405 and the API's own errors as one-line JSON", async () => {
  await withServer(async ({ raw }) => {
    const cases: [string, string, number, RegExp][] = [
      ["GET", "/", 404, /no such route/],
      ["GET", "/v2/health", 404, /no such route/],
      ["GET", "/v1/containers/c1/wait/x", 404, /no such route/],
      ["GET", "/v1/containers/", 400, /container id must not be empty/],
      ["GET", "/v1/containers/nope", 404, /no such container: nope/],
      ["GET", "/v1/gc/nope", 404, /not in GC/],
      ["PUT", "/v1/containers/c1", 405, /method PUT is not allowed here \(allowed: GET, DELETE\)/],
      ["GET", "/v1/gc/c1/retry", 405, /method GET is not allowed here \(allowed: POST\)/],
      ["PUT", "/v1/gc", 405, /allowed: GET, POST/],
      ["POST", "/v1/health", 405, /allowed: GET/],
      ["GET", "/v1/fifos", 405, /allowed: POST/],
      ["GET", "/v1/health?verbose=1", 400, /unknown query parameter "verbose"/],
    ];
    for (const [method, path, status, re] of cases) {
      const r = await raw(method, path);
      assert.equal(r.status, status, `${method} ${path}`);
      assert.match((r.body as { error: string }).error, re, `${method} ${path}`);
    }
    const bad = await raw(
      "POST",
      "/v1/containers",
      JSON.stringify({ ...monitorBody, runtime: "nope" }),
    );
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: "unknown runtime nope" });
  });
});

Deno.test("an API bug is a logged 500 with a one-line reason, and the server goes on", async () => {
  await withServer(async ({ api, raw }) => {
    api.broken.add("list");
    const r = await raw("GET", "/v1/containers");
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, { error: "internal error: list exploded with a second line" });
    assert.equal((await raw("GET", "/v1/health")).status, 200);
  });
});

Deno.test("a corpus of bad requests gets 4xx each, and the server keeps answering", async () => {
  await withServer(async ({ api, raw }) => {
    await api.monitor(monitorBody);
    const m = (patch: Record<string, unknown>) => JSON.stringify({ ...monitorBody, ...patch });
    const corpus: [string, string, BodyInit | undefined, number][] = [
      ["POST", "/v1/containers", "{", 400],
      ["POST", "/v1/containers", "", 400],
      ["POST", "/v1/containers", "null", 400],
      ["POST", "/v1/containers", "[]", 400],
      ["POST", "/v1/containers", '"string"', 400],
      ["POST", "/v1/containers", "{'id': 1}", 400],
      ["POST", "/v1/containers", new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]), 400],
      ["POST", "/v1/containers", m({ id: "a/b" }), 400],
      ["POST", "/v1/containers", m({ id: ".." }), 400],
      ["POST", "/v1/containers", m({ id: "../../etc" }), 400],
      ["POST", "/v1/containers", m({ id: "a\u0000b" }), 400],
      ["POST", "/v1/containers", m({ id: "x".repeat(10_000) }), 400],
      ["POST", "/v1/containers", m({ id: "" }), 400],
      ["POST", "/v1/containers", m({ id: 12 }), 400],
      ["POST", "/v1/containers", m({ pid: 0 }), 400],
      ["POST", "/v1/containers", m({ pid: -1 }), 400],
      ["POST", "/v1/containers", m({ pid: -4242 }), 400],
      ["POST", "/v1/containers", m({ pid: 1.5 }), 400],
      ["POST", "/v1/containers", m({ pid: "4242" }), 400],
      ["POST", "/v1/containers", m({ ppid: -1 }), 400],
      ["POST", "/v1/containers", m({ startTime: -3 }), 400],
      ["POST", "/v1/containers", m({ stateDir: "relative/dir" }), 400],
      ["POST", "/v1/containers", m({ stateDir: "/a/../../etc" }), 400],
      ["POST", "/v1/containers", m({ mounts: ["/"] }), 400],
      ["POST", "/v1/containers", m({ paths: "/x" }), 400],
      ["POST", "/v1/containers", m({ unknownField: true }), 400],
      ["POST", "/v1/containers", "x".repeat(70 * 1024), 413],
      ["POST", "/v1/containers", m({ name: "n".repeat(200 * 1024) }), 413],
      ["POST", "/v1/fifos", JSON.stringify({ stateDir: "rel" }), 400],
      ["POST", "/v1/fifos", JSON.stringify({ stateDir: "/x\u0000y" }), 400],
      ["POST", "/v1/fifos", JSON.stringify({}), 400],
      ["POST", "/v1/gc", JSON.stringify({ id: "c", runtime: "runc", pid: 0, ppid: 1 }), 400],
      ["POST", "/v1/gc", JSON.stringify({ id: "c/d", runtime: "runc", pid: 1, ppid: 1 }), 400],
      ["GET", "/v1/containers/a%2Fb", undefined, 400],
      ["GET", "/v1/containers/%00", undefined, 400],
      ["GET", "/v1/containers/%zz", undefined, 400],
      ["GET", `/v1/containers/${"y".repeat(10_000)}`, undefined, 400],
      ["GET", "/v1/containers/c1/wait?timeout=-1", undefined, 400],
      ["GET", "/v1/containers/c1/wait?timeout=abc", undefined, 400],
      ["GET", "/v1/containers/c1/wait?timeout=99999999999", undefined, 400],
      ["GET", "/v1/events?since=-5", undefined, 400],
      ["GET", "/v1/events?limit=0", undefined, 400],
      ["GET", "/v1/events?follow=maybe", undefined, 400],
      ["GET", "/v1/gc/..%2F..", undefined, 400],
    ];
    for (const [method, path, body, status] of corpus) {
      const label = `${method} ${path.slice(0, 60)} ${String(body ?? "").slice(0, 40)}`;
      const r = await raw(method, path, body);
      assert.equal(r.status, status, label);
      const error = (r.body as { error?: unknown }).error;
      assert.equal(typeof error, "string", label);
      assert.ok(!(error as string).includes("\n"), label);
      assert.ok((error as string).length < 400, `${label}: ${(error as string).length}`);
      // After every bad request the daemon still answers a good one.
      assert.equal((await raw("GET", "/v1/health")).status, 200, `health after ${label}`);
    }
    // Nothing the corpus sent changed the state.
    assert.deepEqual([...api.records.keys()], ["c1"]);
  });
});

Deno.test("requests wait while an exit is being recorded: one wait for all of them, then each is answered", async () => {
  const dir = await Deno.makeTempDir();
  const api = new FakeApi();
  await api.monitor(monitorBody);
  let finish = () => {};
  const recorded = new Promise<void>((resolve) => finish = resolve);
  let waits = 0;
  const exits = {
    recordingExits: true,
    exitsRecorded: () => {
      waits++;
      return recorded;
    },
  };
  const reader = prioritizeReads(api, { version: () => api.log.length });
  const server = await startHttpServer(reader, { path: `${dir}/s.sock`, exits });
  const conns: Deno.Conn[] = [];
  try {
    const paths = ["/v1/containers", "/v1/containers/c1", "/v1/gc", "/v1/health"];
    const answered: string[] = [];
    const asking = Array.from({ length: 20 }, async (_, i) => {
      const conn = await Deno.connect({ transport: "unix", path: server.path });
      conns.push(conn);
      await conn.write(
        new TextEncoder().encode(`GET ${paths[i % paths.length]} HTTP/1.1\r\nhost: x\r\n\r\n`),
      );
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf);
      const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      answered.push(text.slice(0, 12));
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(answered, [], "a request was worked on while an exit was being recorded");
    exits.recordingExits = false;
    finish();
    await Promise.all(asking);
    assert.deepEqual(answered, Array(20).fill("HTTP/1.1 200"));
    assert.equal(waits, 1, `${waits} waits for one exit being recorded`);
  } finally {
    for (const c of conns) c.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shutdown() does not wait for a client that stopped halfway through its request", async () => {
  const dir = await Deno.makeTempDir();
  const server = await startHttpServer(new FakeApi(), {
    path: `${dir}/reaperd.sock`,
    idleTimeoutMs: () => 5000,
  });
  // A head cut short, a head with no end yet, and a body cut short.
  const parts = [
    "GET /v1/health HTTP/1.1\r\nhost: x\r\n",
    "POST /v1/containers HTTP/1.1\r\n",
    'POST /v1/containers HTTP/1.1\r\ncontent-length: 100\r\n\r\n{"id":',
  ];
  const conns: Deno.Conn[] = [];
  try {
    for (const part of parts) {
      const conn = await Deno.connect({ transport: "unix", path: server.path });
      conns.push(conn);
      await conn.write(new TextEncoder().encode(part));
    }
    // The server has read what was sent and waits for the rest.
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    await server.shutdown();
    const took = performance.now() - started;
    assert.ok(took < 1000, `shutdown took ${Math.round(took)} ms`);
  } finally {
    for (const conn of conns) conn.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shutdown() still answers a request that came in whole and waits for its turn", async () => {
  const dir = await Deno.makeTempDir();
  let recorded = () => {};
  const exits = {
    recordingExits: true,
    exitsRecorded: () => new Promise<void>((resolve) => recorded = resolve),
  };
  const server = await startHttpServer(new FakeApi(), { path: `${dir}/reaperd.sock`, exits });
  const conn = await Deno.connect({ transport: "unix", path: server.path });
  try {
    await conn.write(new TextEncoder().encode("GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n"));
    await new Promise((r) => setTimeout(r, 100));
    const stopping = server.shutdown();
    await new Promise((r) => setTimeout(r, 50));
    exits.recordingExits = false;
    recorded();
    const answer = new Uint8Array(4096);
    const n = await conn.read(answer);
    assert.match(new TextDecoder().decode(answer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 /);
    await stopping;
  } finally {
    conn.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
