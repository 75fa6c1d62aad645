/**
 * A client that takes an answer a few bytes at a time cannot keep its connection: a whole answer
 * must be read within `http.responseTimeoutMs`, and the daemon serves everyone else meanwhile.
 * Event streams are not cut by it.
 */
import assert from "node:assert/strict";
import { TestDaemon } from "./support/daemon.ts";
import { registerGhosts } from "./support/ghosts.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RESPONSE_TIMEOUT_MS = 1500;

/** Registers `count` containers whose ids make records of over 400 bytes each. */
async function register(d: TestDaemon, count: number, prefix: string): Promise<void> {
  const ids = Array.from(
    { length: count },
    (_, i) => `${prefix}-${String(i).padStart(5, "0")}-${"x".repeat(40)}`,
  );
  await registerGhosts(d, ids, { writeEnds: false, concurrency: 16 });
}

/** Inodes of the sockets process `pid` has open. */
function socketInodes(pid: number | "self"): Set<string> {
  const found = new Set<string>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      if (m !== null) found.add(m[1]!);
    } catch {
      // Closed meanwhile.
    }
  }
  return found;
}

/** Connects to the daemon; also returns the inode of the daemon's end of the connection. */
async function connectTraced(d: TestDaemon): Promise<{ conn: Deno.Conn; daemonEnd: string }> {
  const mine = socketInodes("self");
  const conn = await Deno.connect({ transport: "unix", path: d.socket });
  const ours = [...socketInodes("self")].filter((i) => !mine.has(i));
  for (let tries = 0; tries < 50; tries++) {
    const out = await new Deno.Command("ss", { args: ["-xH"], stdout: "piped" }).output();
    const daemons = socketInodes(d.pid);
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 8 && ours.includes(cols[7]!) && daemons.has(cols[5]!)) {
        return { conn, daemonEnd: cols[5]! };
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  conn.close();
  throw new Error("the daemon's end of the connection was not found");
}

Deno.test("response deadline: a client reading ps 1 byte per 200 ms is cut off within http.responseTimeoutMs while others are served; a stream is not", async () => {
  const d = await TestDaemon.start({
    extra: { http: { responseTimeoutMs: RESPONSE_TIMEOUT_MS } },
  });
  const conns: Deno.Conn[] = [];
  try {
    await register(d, 1200, "big");
    // The answer must be larger than what the socket's buffer takes at once.
    const whole = await d.api("GET", "/v1/containers");
    assert.ok(whole.text.length > 400_000, `ps is only ${whole.text.length} bytes`);

    // A stream, open longer than the deadline, still gets what happens.
    const stream = await Deno.connect({ transport: "unix", path: d.socket });
    conns.push(stream);
    await stream.write(encoder.encode("GET /v1/events?follow=1 HTTP/1.1\r\n\r\n"));
    let streamed = "";
    const following = (async () => {
      const got = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await stream.read(got).catch(() => null);
        if (n === null) return;
        streamed = (streamed + decoder.decode(got.subarray(0, n))).slice(-100_000);
      }
    })();

    const { conn: slow, daemonEnd } = await connectTraced(d);
    conns.push(slow);
    await slow.write(encoder.encode("GET /v1/containers HTTP/1.1\r\nhost: x\r\n\r\n"));
    const started = performance.now();

    // Meanwhile, another client is answered promptly, again and again.
    let served = 0;
    let slowest = 0;
    let trickling = true;
    const other = (async () => {
      while (trickling) {
        const t = performance.now();
        const res = await d.api("GET", "/v1/health");
        assert.equal(res.status, 200, res.text);
        slowest = Math.max(slowest, performance.now() - t);
        served++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const one = new Uint8Array(1);
    let trickled = "";
    let freedAfter: number | null = null;
    while (performance.now() - started < RESPONSE_TIMEOUT_MS + 1500) {
      const n = await slow.read(one);
      if (n === null) break;
      trickled += decoder.decode(one.subarray(0, n));
      if (freedAfter === null && !socketInodes(d.pid).has(daemonEnd)) {
        freedAfter = performance.now() - started;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    trickling = false;
    await other;
    assert.match(trickled, /^HTTP\/1\.1 200/);
    assert.ok(freedAfter !== null, "the daemon still holds the slow client's connection");
    assert.ok(
      freedAfter < RESPONSE_TIMEOUT_MS + 1000,
      `the connection was let go only after ${Math.round(freedAfter)} ms`,
    );
    // What the daemon had put in the socket before closing is there; then the end, not the
    // whole answer.
    let rest = 0;
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await slow.read(buf).catch(() => null);
      if (n === null) break;
      rest += n;
    }
    assert.ok(rest + trickled.length < whole.text.length, "the slow client got the whole answer");
    assert.ok(served >= 10, `only ${served} other requests answered`);
    assert.ok(slowest < 1000, `another client waited ${Math.round(slowest)} ms`);

    // The stream is still open past the deadline and carries the next event.
    await register(d, 1, "late");
    const deadline = performance.now() + 3000;
    while (!streamed.includes("late-00000") && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(streamed, /"id":"late-00000/);
    stream.close();
    conns.splice(conns.indexOf(stream), 1);
    await following;
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // Closed already.
      }
    }
    await d.dispose();
  }
});
