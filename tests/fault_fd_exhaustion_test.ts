/**
 * Clients that take every descriptor the daemon may open: the daemon stays up, keeps serving
 * once they let go, and records a container's exit meanwhile.
 */
import assert from "node:assert/strict";
import { type BareContainer, startBareContainer } from "./support/bare_container.ts";
import { TestDaemon } from "./support/daemon.ts";
import { exitEventOf } from "./support/fault_util.ts";
import { until } from "./support/poll.ts";

/** Sets the daemon's RLIMIT_NOFILE from outside, as an operator's `prlimit` would. */
async function setFdLimit(pid: number, soft: number, hard = soft): Promise<void> {
  const out = await new Deno.Command("prlimit", {
    args: ["--pid", String(pid), `--nofile=${soft}:${hard}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`prlimit: ${new TextDecoder().decode(out.stderr)}`);
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

async function openIdle(path: string, count: number): Promise<Deno.UnixConn[]> {
  const conns: Deno.UnixConn[] = [];
  for (let i = 0; i < count; i++) {
    try {
      conns.push(await Deno.connect({ transport: "unix", path }));
    } catch {
      // The daemon refused or its backlog is full: what is open is the load.
    }
  }
  return conns;
}

Deno.test("fd exhaustion: 1,100 idle connections at a 1,024 fd limit; the daemon lives and records an exit", async () => {
  const d = await TestDaemon.start();
  let c: BareContainer | undefined;
  let conns: Deno.UnixConn[] = [];
  try {
    c = await startBareContainer(d, "fd-1");
    await setFdLimit(d.pid, 1024);
    conns = await openIdle(d.socket, 1100);
    // Let the daemon take what it can of them.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(alive(d.pid), `daemon died:\n${d.logs}`);
    await c.exit(7);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(alive(d.pid), `daemon died:\n${d.logs}`);
    const released = Date.now();
    for (const conn of conns) conn.close();
    conns = [];
    const record = await until("fd-1 recorded", async () => {
      const res = await d.api("GET", "/v1/containers/fd-1");
      const body = res.body as { state: string; exit: { code: number; at: number } | null };
      return res.status === 200 && body.state !== "running" ? body : null;
    });
    assert.equal(record.exit?.code, 7);
    const exitEvent = await exitEventOf(d, "fd-1");
    assert.ok(exitEvent !== undefined, "no exit event for fd-1");
    assert.ok(exitEvent.at < released, "the exit was recorded only after the clients let go");
    assert.ok(alive(d.pid), `daemon died:\n${d.logs}`);
    assert.doesNotMatch(d.logs, /Uncaught/);
  } finally {
    for (const conn of conns) conn.close();
    await c?.dispose();
    await d.dispose();
  }
});

Deno.test("fd exhaustion: accept fails with EMFILE at a limit below what the daemon holds; it lives, records an exit, serves again", async () => {
  const d = await TestDaemon.start();
  let c: BareContainer | undefined;
  let conns: Deno.UnixConn[] = [];
  try {
    c = await startBareContainer(d, "fd-2");
    const held = [...Deno.readDirSync(`/proc/${d.pid}/fd`)].length;
    // Room for one or two more descriptors: every accept beyond them fails.
    await setFdLimit(d.pid, held + 2, 4096);
    conns = await openIdle(d.socket, 200);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(alive(d.pid), `daemon died:\n${d.logs}`);
    await c.exit(9);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(alive(d.pid), `daemon died:\n${d.logs}`);
    const released = Date.now();
    for (const conn of conns) conn.close();
    conns = [];
    await setFdLimit(d.pid, 4096);
    const record = await until("fd-2 recorded", async () => {
      const res = await d.api("GET", "/v1/containers/fd-2").catch(() => null);
      const body = res?.body as { state: string; exit: { code: number } | null } | undefined;
      return res?.status === 200 && body?.state !== "running" ? body! : null;
    });
    assert.equal(record.exit?.code, 9);
    const exitEvent = await exitEventOf(d, "fd-2");
    assert.ok(exitEvent !== undefined && exitEvent.at < released, JSON.stringify(exitEvent));
    assert.match(
      d.logs,
      /accepting a connection failed, going on: .*(Too many open files|os error 24)/,
    );
    assert.doesNotMatch(d.logs, /Uncaught/);
  } finally {
    for (const conn of conns) conn.close();
    await c?.dispose();
    await d.dispose();
  }
});
