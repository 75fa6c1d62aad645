/**
 * The real daemon process, its CLI and test shims that speak the isulad-shim FIFO protocol:
 * what an operator or a container engine sees.
 */
import assert from "node:assert/strict";
import { type RunningShim, startShim, stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { until } from "./support/poll.ts";
import { needs } from "./support/needs.ts";

const withCc = needs("cc");

/** A container that runs until the file `go` appears in its state dir, then exits `code`. */
function untilGo(code: number): string[] {
  return ["sh", "-c", `while [ ! -e go ]; do sleep 0.02; done; exit ${code}`];
}

interface Inspected {
  state: string;
  pid: number;
  exit: { code: number | null; known: boolean; reason: string } | null;
}

async function inspect(d: TestDaemon, id: string): Promise<Inspected> {
  const res = await d.api("GET", `/v1/containers/${id}`);
  assert.equal(res.status, 200, res.text);
  return res.body as Inspected;
}

function stopped(d: TestDaemon, id: string): Promise<Inspected> {
  return until(`${id} stopped`, async () => {
    const r = await inspect(d, id);
    return r.state === "stopped" ? r : null;
  });
}

/** create-fifo, start a shim, monitor: the order a container engine follows. */
async function startContainer(d: TestDaemon, id: string, code: number): Promise<RunningShim> {
  const stateDir = `${d.stateRoot}/fake/${id}`;
  const fifo = await d.api("POST", "/v1/fifos", { stateDir });
  assert.equal(fifo.status, 200, fifo.text);
  const shim = await startShim({ stateDir, mode: { kind: "exec", argv: untilGo(code) } });
  const res = await d.api("POST", "/v1/containers", {
    id,
    runtime: "fake",
    stateDir,
    pid: shim.container.pid,
    ppid: shim.shim.pid,
  });
  assert.equal(res.status, 201, res.text);
  return shim;
}

withCc.test("reaperd CLI: create-fifo → shim → monitor → exit 5 → wait prints 5 and exits 5", async () => {
  const d = await TestDaemon.start();
  let shim: RunningShim | undefined;
  try {
    const stateDir = `${d.stateRoot}/fake/web-1`;
    const created = await d.cli("create-fifo", stateDir);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout.trim(), `${stateDir}/exit_fifo`);

    shim = await startShim({ stateDir, mode: { kind: "exec", argv: untilGo(5) } });
    const monitored = await d.cli(
      "monitor",
      "web-1",
      "--runtime",
      "fake",
      "--state-dir",
      stateDir,
      "--pid",
      String(shim.container.pid),
      "--ppid",
      String(shim.shim.pid),
    );
    assert.equal(monitored.code, 0, monitored.stderr);
    const running = JSON.parse((await d.cli("inspect", "web-1", "--json")).stdout);
    assert.equal(running.state, "running");
    assert.equal(running.pid, shim.container.pid);
    assert.equal(running.ppid, shim.shim.pid);
    assert.equal(running.startTime, shim.container.startTime);
    assert.equal(running.pStartTime, shim.shim.startTime);

    const waiting = d.cli("wait", "web-1", "--timeout", "30");
    await new Promise((r) => setTimeout(r, 300));
    await Deno.writeTextFile(`${stateDir}/go`, "");
    const waited = await waiting;
    assert.equal(waited.code, 5, waited.stderr);
    assert.equal(waited.stdout.trim(), "5");

    await stopped(d, "web-1");
    const inspected = await d.cli("inspect", "web-1", "--json");
    assert.equal(inspected.code, 0);
    const record = JSON.parse(inspected.stdout);
    assert.equal(record.id, "web-1");
    assert.equal(record.name, "web-1");
    assert.equal(record.runtime, "fake");
    assert.equal(record.state, "stopped");
    assert.deepEqual(
      [record.exit.code, record.exit.signal, record.exit.known],
      [5, null, true],
    );
    assert.equal(typeof record.exit.reason, "string");
    await assert.rejects(
      Deno.stat(stateDir),
      Deno.errors.NotFound,
      "cleanup removed the state dir",
    );

    const ps = JSON.parse((await d.cli("ps", "--json")).stdout);
    assert.deepEqual(ps.map((r: { id: string }) => r.id), ["web-1"]);
  } finally {
    await stopShim(shim);
    await d.dispose();
  }
});

withCc.test("reaperd restart after SIGKILL: live containers monitored again, the one that died while down is unknown and collected", async () => {
  const d = await TestDaemon.start();
  const shims: RunningShim[] = [];
  try {
    for (const [id, code] of [["a", 3], ["b", 4], ["c", 9]] as const) {
      shims.push(await startContainer(d, id, code));
    }
    const killed = await d.stop("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");

    // c exits while nobody holds the read end: its shim's write fails and the status is lost.
    await Deno.writeTextFile(`${d.stateRoot}/fake/c/go`, "");
    await shims[2]!.status;

    await d.restart();
    const c = await stopped(d, "c");
    assert.equal(c.exit?.known, false);
    assert.equal(c.exit?.code, null);
    assert.match(c.exit!.reason, /exited while reaperd was down/);
    await assert.rejects(Deno.stat(`${d.stateRoot}/fake/c`), Deno.errors.NotFound);

    for (const id of ["a", "b"]) assert.equal((await inspect(d, id)).state, "running");
    const health = await d.api("GET", "/v1/health");
    assert.equal((health.body as { monitored: number }).monitored, 2);

    await Deno.writeTextFile(`${d.stateRoot}/fake/a/go`, "");
    await Deno.writeTextFile(`${d.stateRoot}/fake/b/go`, "");
    const a = await stopped(d, "a");
    const b = await stopped(d, "b");
    assert.deepEqual([a.exit?.code, a.exit?.known], [3, true]);
    assert.deepEqual([b.exit?.code, b.exit?.known], [4, true]);

    // Every exit is in the log exactly once.
    const events = (await d.api("GET", "/v1/events")).text.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    for (const id of ["a", "b", "c"]) {
      assert.equal(events.filter((e) => e.kind === "exit" && e.id === id).length, 1, id);
    }
  } finally {
    for (const s of shims) await stopShim(s);
    await d.dispose();
  }
});

Deno.test("reaperd refuses a second daemon on the same store and socket", async () => {
  const d = await TestDaemon.start();
  try {
    const second = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../main.ts", import.meta.url).pathname,
        "serve",
        "--config",
        d.configPath,
      ],
      stdin: "null",
    }).output();
    assert.equal(second.code, 1);
    assert.match(new TextDecoder().decode(second.stderr), /already running/);
    const health = await d.api("GET", "/v1/health");
    assert.equal(health.status, 200, "the first daemon still answers");
  } finally {
    await d.dispose();
  }
});

Deno.test("reaperd tells systemd READY=1 after restore and repeats WATCHDOG=1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-notify-" });
  const path = `${dir}/notify.sock`;
  const listener = Deno.listenDatagram({ transport: "unixpacket", path });
  let d: TestDaemon | undefined;
  try {
    const messages: string[] = [];
    const receiving = (async () => {
      try {
        for (;;) {
          const [data] = await listener.receive();
          messages.push(new TextDecoder().decode(data));
        }
      } catch {
        // Closed.
      }
    })();
    d = await TestDaemon.start({ env: { NOTIFY_SOCKET: path, WATCHDOG_USEC: "200000" } });
    await until("READY=1 and two WATCHDOG=1", () => {
      const ready = messages.findIndex((m) => m.split("\n").includes("READY=1"));
      const dogs = messages.filter((m) => m.split("\n").includes("WATCHDOG=1")).length;
      return Promise.resolve(ready >= 0 && dogs >= 2 ? true : null);
    }, 5000);
    const readyMessage = messages.find((m) => m.includes("READY=1"))!;
    assert.match(readyMessage, /STATUS=ok: 0 monitored, 0 in GC/);
    await d.stop("SIGTERM");
    await until(
      "STOPPING=1",
      () => Promise.resolve(messages.some((m) => m.includes("STOPPING=1")) || null),
    );
    listener.close();
    await receiving;
  } finally {
    try {
      listener.close();
    } catch {
      // Closed already.
    }
    await d?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reaperd refuses a state dir outside its state root: it could never be cleaned", async () => {
  const d = await TestDaemon.start();
  try {
    const outside = await d.api("POST", "/v1/fifos", { stateDir: `${d.dir}/elsewhere/c1` });
    assert.equal(outside.status, 400);
    assert.match((outside.body as { error: string }).error, /not inside the state root/);
    await assert.rejects(Deno.stat(`${d.dir}/elsewhere`), Deno.errors.NotFound, "nothing made");
    const root = await d.api("POST", "/v1/fifos", { stateDir: d.stateRoot });
    assert.equal(root.status, 400);
    const cli = await d.cli("create-fifo", "/tmp/reaperd-not-the-root/c1");
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /not inside the state root/);
  } finally {
    await d.dispose();
  }
});

withCc.test("reaperd forgets a stopped container after stoppedRetentionMs, and only a stopped one", async () => {
  const retentionMs = 1_500;
  const d = await TestDaemon.start({ extra: { stoppedRetentionMs: retentionMs } });
  const shims: RunningShim[] = [];
  try {
    shims.push(await startContainer(d, "done", 0));
    shims.push(await startContainer(d, "alive", 0));
    await Deno.writeTextFile(`${d.stateRoot}/fake/done/go`, "");
    await stopped(d, "done");
    const stoppedAt = Date.now();

    await until(
      "done forgotten",
      async () => (await d.api("GET", "/v1/containers/done")).status === 404 ? true : null,
    );
    const keptMs = Date.now() - stoppedAt;
    // Its updatedAt is a little before the stopped event was read: allow that much early.
    assert.ok(keptMs >= retentionMs - 200, `forgotten after ${keptMs} ms`);

    const cli = await d.cli("inspect", "done");
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /done/);
    assert.equal((await inspect(d, "alive")).state, "running");
    const ps = JSON.parse((await d.cli("ps", "--json")).stdout) as { id: string }[];
    assert.deepEqual(ps.map((r) => r.id), ["alive"]);
  } finally {
    for (const s of shims) await stopShim(s);
    await d.dispose();
  }
});
