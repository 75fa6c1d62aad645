import assert from "node:assert/strict";
import { FakeApi } from "./_fake_api.ts";
import { startHttpServer } from "./http.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

async function withServer(
  limits: { maxConnections: number; idleTimeoutMs: number },
  fn: (path: string, limits: { maxConnections: number; idleTimeoutMs: number }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const live = { ...limits };
  const server = await startHttpServer(new FakeApi(), {
    path: `${dir}/reaperd.sock`,
    maxConnections: () => live.maxConnections,
    idleTimeoutMs: () => live.idleTimeoutMs,
  });
  try {
    await fn(server.path, live);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const pending = new WeakMap<Deno.Conn, Promise<Uint8Array | null>>();

/** The connection's next chunk; a read that lost a race stays pending for the next call. */
function nextChunk(conn: Deno.Conn): Promise<Uint8Array | null> {
  let p = pending.get(conn);
  if (p === undefined) {
    const buf = new Uint8Array(4096);
    p = conn.read(buf).then((n) => n === null ? null : buf.subarray(0, n), () => null);
    pending.set(conn, p);
  }
  return p;
}

/** Reads until the peer closes or `ms` pass; returns the text and whether it closed. */
async function readAll(conn: Deno.Conn, ms: number): Promise<{ text: string; closed: boolean }> {
  let text = "";
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return { text, closed: false };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const chunk = await Promise.race([
      nextChunk(conn),
      new Promise<"late">((r) => timer = setTimeout(() => r("late"), left)),
    ]);
    clearTimeout(timer);
    if (chunk === "late") return { text, closed: false };
    pending.delete(conn);
    if (chunk === null) return { text, closed: true };
    text += decoder.decode(chunk);
  }
}

/**
 * Sends `request` on a new connection and reads until the peer closes: the text, with
 * " (still open)" after it when the peer did not close within `ms`, or what failed.
 */
async function ask(path: string, request: Uint8Array, ms: number): Promise<string> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    return `connect: ${e instanceof Error ? e.name : String(e)}`;
  }
  try {
    await conn.write(request);
    const got = await readAll(conn, ms);
    return got.closed ? got.text : `${got.text} (still open)`;
  } catch (e) {
    return `io: ${e instanceof Error ? e.name : String(e)}`;
  } finally {
    conn.close();
  }
}

const GET_HEALTH = encoder.encode("GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n");

Deno.test("http limits: a connection idle past idleTimeoutMs is closed; one in use is not", async () => {
  await withServer({ maxConnections: 10, idleTimeoutMs: 300 }, async (path) => {
    const idle = await Deno.connect({ transport: "unix", path });
    const busy = await Deno.connect({ transport: "unix", path });
    try {
      for (let i = 0; i < 4; i++) {
        await busy.write(GET_HEALTH);
        const got = await readAll(busy, 150);
        assert.match(got.text, /^HTTP\/1\.1 200 OK\r\n/);
        assert.equal(got.closed, false);
      }
      const idleEnd = await readAll(idle, 1000);
      assert.deepEqual(idleEnd, { text: "", closed: true });
    } finally {
      idle.close();
      busy.close();
    }
  });
});

Deno.test("http limits: a head trickled in byte by byte is cut off after idleTimeoutMs", async () => {
  await withServer({ maxConnections: 10, idleTimeoutMs: 400 }, async (path) => {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const started = Date.now();
      let closed = false;
      for (const byte of encoder.encode("GET /v1/health HTTP/1.1\r\nx-slow: " + "a".repeat(40))) {
        try {
          await conn.write(new Uint8Array([byte]));
        } catch {
          closed = true;
          break;
        }
        const got = await readAll(conn, 50);
        if (got.closed) {
          closed = true;
          break;
        }
      }
      assert.ok(closed, "a trickled head kept the connection");
      assert.ok(Date.now() - started < 1500, `closed only after ${Date.now() - started} ms`);
    } finally {
      conn.close();
    }
  });
});

Deno.test("http limits: past maxConnections a client gets 503 and a closed connection; the cap follows its source", async () => {
  await withServer({ maxConnections: 3, idleTimeoutMs: 10_000 }, async (path, live) => {
    const held = await Promise.all([1, 2, 3].map(() => Deno.connect({ transport: "unix", path })));
    const extra = await Deno.connect({ transport: "unix", path });
    try {
      const refused = await readAll(extra, 2000);
      assert.equal(refused.closed, true);
      assert.match(refused.text, /^HTTP\/1\.1 503 /);
      assert.match(refused.text, /"error":"too many connections \(3\): try again later"/);
      // The held ones still work.
      await held[0]!.write(GET_HEALTH);
      assert.match((await readAll(held[0]!, 300)).text, /^HTTP\/1\.1 200 /);
      // One leaves: a new client gets in.
      held.pop()!.close();
      await new Promise((r) => setTimeout(r, 50));
      const next = await Deno.connect({ transport: "unix", path });
      await next.write(GET_HEALTH);
      assert.match((await readAll(next, 300)).text, /^HTTP\/1\.1 200 /);
      held.push(next);
      // A raised cap lets one more in at once.
      live.maxConnections = 4;
      const fourth = await Deno.connect({ transport: "unix", path });
      held.push(fourth);
      await fourth.write(GET_HEALTH);
      assert.match((await readAll(fourth, 300)).text, /^HTTP\/1\.1 200 /);
    } finally {
      for (const c of held) c.close();
      extra.close();
    }
  });
});

Deno.test("http limits: pipelined, chunked and 100-continue requests on one keep-alive connection", async () => {
  await withServer({ maxConnections: 10, idleTimeoutMs: 2000 }, async (path) => {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const body = JSON.stringify({ stateDir: "/var/run/isulad/runc/c1" });
      const half = Math.floor(body.length / 2);
      const chunked = `${half.toString(16)}\r\n${body.slice(0, half)}\r\n` +
        `${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`;
      await conn.write(encoder.encode(
        "GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n" +
          "POST /v1/fifos HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n" + chunked,
      ));
      await conn.write(encoder.encode(
        `POST /v1/fifos HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`,
      ));
      const interim = await readAll(conn, 300);
      assert.equal(interim.text.match(/HTTP\/1\.1 200 /g)?.length, 2, interim.text);
      assert.match(interim.text, /HTTP\/1\.1 100 Continue\r\n\r\n$/);
      await conn.write(encoder.encode(body));
      const last = await readAll(conn, 300);
      assert.match(
        last.text,
        /^HTTP\/1\.1 200 [^]*"fifo":"\/var\/run\/isulad\/runc\/c1\/exit_fifo"/,
      );
      assert.equal(last.closed, false);
    } finally {
      conn.close();
    }
  });
});

Deno.test("http limits: a transfer coding other than chunked alone is refused with 501, not read as plain", async () => {
  await withServer({ maxConnections: 10, idleTimeoutMs: 2000 }, async (path) => {
    for (const te of ["gzip, chunked", "deflate,chunked", "chunked, gzip", "identity"]) {
      const got = await ask(
        path,
        encoder.encode(
          `POST /v1/fifos HTTP/1.1\r\ntransfer-encoding: ${te}\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
        ),
        1000,
      );
      // Answered, and closed: `ask` says "(still open)" otherwise.
      assert.match(got, /^HTTP\/1\.1 501 [^]*\}\n$/, te);
    }
  });
});

Deno.test("http limits: 60 fetch clients at once past maxConnections each get the 503, not a connection error", async () => {
  await withServer({ maxConnections: 2, idleTimeoutMs: 10_000 }, async (path) => {
    const held = await Promise.all([1, 2].map(() => Deno.connect({ transport: "unix", path })));
    try {
      await new Promise((r) => setTimeout(r, 50));
      const answers = await Promise.all(Array.from({ length: 60 }, async () => {
        using client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
        try {
          const response = await fetch("http://127.0.0.1/v1/health", { client });
          return `${response.status} ${(await response.json()).error}`;
        } catch (e) {
          return e instanceof Error ? e.name : String(e);
        }
      }));
      const counts: Record<string, number> = {};
      for (const a of answers) counts[a] = (counts[a] ?? 0) + 1;
      assert.deepEqual(counts, { "503 too many connections (2): try again later": 60 });
    } finally {
      for (const c of held) c.close();
    }
  });
});

Deno.test("http limits: 300 raw clients at once past maxConnections each read the 503", async () => {
  await withServer({ maxConnections: 2, idleTimeoutMs: 10_000 }, async (path) => {
    const held = await Promise.all([1, 2].map(() => Deno.connect({ transport: "unix", path })));
    try {
      await new Promise((r) => setTimeout(r, 50));
      const answers = await Promise.all(
        Array.from({ length: 300 }, () => ask(path, GET_HEALTH, 10_000)),
      );
      const counts: Record<string, number> = {};
      for (const a of answers) {
        const key = /^HTTP\/1\.1 503 [^]*too many connections \(2\)/.test(a) ? "503" : a;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      assert.deepEqual(counts, { "503": 300 });
    } finally {
      for (const c of held) c.close();
    }
  });
});
