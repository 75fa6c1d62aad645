/**
 * The daemon's store file as an operator meets it: one daemon per store however its files are
 * tampered with, private files whatever the umask, clear words when it cannot be opened, and
 * damage or lost history noticed and reported instead of started over in silence.
 */
import assert from "node:assert/strict";
import * as libc from "../src/sys/libc.ts";
import { readProcStat } from "../src/sys/proc.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  type FakeContainer,
  orphanHeldByShim,
  startFake,
  stopAll,
  writeExit,
} from "./support/fake_container.ts";
import { needs } from "./support/needs.ts";
import { until } from "./support/poll.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** Mounting a read-only file system takes root. */
const asRoot = needs("root");

/** Runs `reaperd serve --config <path>` to its end (killed after `timeoutMs` if it serves). */
async function serveOnce(
  configPath: string,
  timeoutMs = 15_000,
): Promise<{ code: number; stderr: string; killed: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "serve", "--config", configPath],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr), killed };
}

interface Health {
  status: string;
  reasons: string[];
}

async function health(d: TestDaemon): Promise<Health> {
  const res = await d.api("GET", "/v1/health");
  return res.body as Health;
}

Deno.test("store file: deleting the lock file does not let a second daemon open the same store", async () => {
  const d = await TestDaemon.start();
  try {
    await Deno.remove(`${d.db}.lock`).catch(() => {});
    const second = await serveOnce(d.configPath);
    assert.equal(second.killed, false, `the second daemon kept running:\n${second.stderr}`);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, new RegExp(`store ${d.db} is in use by process ${d.pid}`));
    assert.equal((await health(d)).status, "ok", "the first daemon is untouched");
  } finally {
    await d.dispose();
  }
});

Deno.test("store file: the db, its -wal and -shm are 0600 under umask 022", async () => {
  const umask = Deno.umask(0o022);
  let d: TestDaemon;
  try {
    d = await TestDaemon.start();
  } finally {
    Deno.umask(umask);
  }
  const containers: FakeContainer[] = [];
  try {
    containers.push(await startFake(d, "c1"));
    for (const path of [d.db, `${d.db}-wal`, `${d.db}-shm`]) {
      const mode = (await Deno.stat(path)).mode! & 0o777;
      assert.equal(mode.toString(8), "600", path);
    }
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});

asRoot.test("store file: a db on a read-only file system fails start with one line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-rofs-" });
  const ro = `${dir}/ro`;
  await Deno.mkdir(ro);
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "ro", "tmpfs", ro] })
    .output();
  assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
  try {
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        socket: `${dir}/reaperd.sock`,
        db: `${ro}/reaperd.db`,
        stateRoot: `${dir}/state`,
        runtimes: { fake: { path: "/bin/true", args: [] } },
      }),
    );
    const run = await serveOnce(config);
    assert.equal(run.killed, false, run.stderr);
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`store ${ro}/reaperd.db: read-only file system \\(EROFS\\)`),
    );
  } finally {
    await new Deno.Command("umount", { args: [ro] }).output();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store file: a -wal deleted after kill -9 is reported (health degraded, logged at error) and its 20 running containers are found again from the state root", async () => {
  const d = await TestDaemon.start();
  const containers: FakeContainer[] = [];
  try {
    for (let i = 0; i < 20; i++) containers.push(await startFake(d, `c${i}`));
    // Let the marker catch up with the last commit, as it does a moment after any write.
    await new Promise((r) => setTimeout(r, 600));
    await d.stop("SIGKILL");
    await Deno.remove(`${d.db}-wal`);
    await d.restart();
    const h = await health(d);
    assert.equal(h.status, "degraded");
    assert.ok(h.reasons.some((r) => /lost/.test(r) && r.includes(d.db)), h.reasons.join("\n"));
    assert.match(d.logs, /ERROR.*lost/i);
    // The containers are found again from the state root, and their exits are recorded.
    containers.forEach((c, i) => writeExit(c.writer, 40 + i));
    for (const [i, c] of containers.entries()) {
      const record = await until(`${c.id} exit recorded`, async () => {
        const res = await d.api("GET", `/v1/containers/${c.id}`);
        const r = res.body as { state?: string; exit?: { code: number | null } | null };
        return res.status === 200 && r.state === "stopped" ? r : null;
      });
      assert.equal(record.exit?.code, 40 + i, c.id);
    }
    // Adopted with unknown identity, cleaned up, and not one of their processes signalled.
    for (const c of containers) {
      const stat = readProcStat(c.process.pid);
      assert.ok(stat !== null && stat.state !== "Z", `${c.id}'s process was left alone`);
    }
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});

Deno.test("store file: a garbled db is moved aside with a clear message and the daemon starts on a fresh store", async () => {
  const d = await TestDaemon.start();
  const containers: FakeContainer[] = [];
  try {
    for (let i = 0; i < 5; i++) containers.push(await startFake(d, `c${i}`));
    await d.stop();
    const size = (await Deno.stat(d.db)).size;
    const file = await Deno.open(d.db, { write: true });
    await file.seek(100, Deno.SeekMode.Start);
    await file.write(crypto.getRandomValues(new Uint8Array(Math.min(size - 100, 60_000))));
    file.close();
    await d.restart();
    const h = await health(d);
    assert.equal(h.status, "degraded");
    assert.ok(h.reasons.some((r) => /damaged.*moved aside/.test(r)), h.reasons.join("\n"));
    const aside = [...Deno.readDirSync(d.dir)].filter((e) => e.name.includes(".damaged-"));
    assert.ok(aside.length >= 1, "the damaged file is kept");
    assert.match(d.logs, /ERROR.*damaged.*moved aside/);
    // The fresh store works.
    containers.push(await startFake(d, "after"));
  } finally {
    await stopAll(containers);
    await d.dispose();
  }
});

Deno.test("store file: a db whose header is garbage is moved aside, not a restart loop", async () => {
  const d = await TestDaemon.start();
  try {
    await d.stop();
    const file = await Deno.open(d.db, { write: true });
    await file.write(new TextEncoder().encode("garbage garbage!"));
    file.close();
    await d.restart();
    const h = await health(d);
    assert.ok(h.reasons.some((r) => /not a database.*moved aside/.test(r)), h.reasons.join("\n"));
  } finally {
    await d.dispose();
  }
});

Deno.test("state root sweep: FIFOs with no record are adopted with unknown identity, their exits recorded, then cleaned", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  // What a crashed host leaves: state dirs with FIFOs, one still held by its shim.
  const held = `${dir}/state/fake/held`;
  const orphan = `${dir}/state/fake/orphan`;
  const writer = await orphanHeldByShim(held);
  await Deno.mkdir(orphan, { recursive: true });
  libc.mkfifo(`${orphan}/exit_fifo`, 0o600);
  const d = await TestDaemon.start({ dir });
  try {
    const orphanDone = await until("orphan stopped", async () => {
      const r = (await d.api("GET", "/v1/containers/orphan")).body as Record<string, unknown>;
      return r.state === "stopped" ? r : null;
    });
    assert.equal(orphanDone.pid, 0);
    assert.equal(orphanDone.startTime, 0);
    const orphanExit = orphanDone.exit as { known: boolean; reason: string };
    assert.equal(orphanExit.known, false);
    assert.match(orphanExit.reason, /no shim holds its exit FIFO/);
    const heldNow = (await d.api("GET", "/v1/containers/held")).body as Record<string, unknown>;
    assert.equal(heldNow.state, "running", "watched while its shim holds the FIFO");
    assert.equal(heldNow.pid, 0);

    writeExit(writer, 7);
    libc.close(writer);
    const heldDone = await until("held stopped", async () => {
      const r = (await d.api("GET", "/v1/containers/held")).body as Record<string, unknown>;
      return r.state === "stopped" ? r : null;
    });
    assert.equal((heldDone.exit as { code: number }).code, 7);

    const events = (await d.api("GET", "/v1/events?since=0")).text;
    assert.match(
      events,
      /"kind":"adopt"[^\n]*"reason":"found under the state root with no record"/,
    );
    assert.match(events, /"kind":"restore"[^\n]*"adopted":2/);
    const metrics = (await d.api("GET", "/metrics")).text;
    assert.match(metrics, /reaperd_adopted_containers(\{\})? 2/);
    assert.match(d.logs, /adopted 2 containers/);
  } finally {
    await d.dispose();
  }
});

Deno.test("state root sweep: a container adopted at start takes the identity its engine's later monitor gives", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  // create-fifo happened, then reaperd restarted before the engine's monitor came.
  const stateDir = `${dir}/state/fake/late`;
  const writer = await orphanHeldByShim(stateDir);
  const init = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
  const d = await TestDaemon.start({ dir });
  try {
    const adopted = (await d.api("GET", "/v1/containers/late")).body as { pid: number };
    assert.equal(adopted.pid, 0);
    const res = await d.api("POST", "/v1/containers", {
      id: "late",
      runtime: "fake",
      stateDir,
      pid: init.pid,
      startTime: readProcStat(init.pid)!.startTime,
      ppid: 0,
    });
    assert.equal(res.status, 201, res.text);
    assert.equal((res.body as { pid: number }).pid, init.pid);
    writeExit(writer, 12);
    libc.close(writer);
    const done = await until("late stopped", async () => {
      const r = (await d.api("GET", "/v1/containers/late")).body as Record<string, unknown>;
      return r.state === "stopped" ? r : null;
    });
    assert.equal(done.pid, init.pid);
    assert.equal((done.exit as { code: number }).code, 12);
  } finally {
    try {
      init.kill("SIGKILL");
    } catch {
      // Killed by cleanup: its identity was known by then.
    }
    await init.status;
    await d.dispose();
  }
});
