/**
 * OOM kills, told apart from any other SIGKILL: real runc containers under the test shim, one
 * over its memory limit (the kernel's OOM killer kills it), one killed by hand with the same
 * signal. The daemon reports `exit.oomKilled` in inspect, `wait --json` and the exit event,
 * and counts OOM kills in `reaperd_oom_kills_total`.
 */
import assert from "node:assert/strict";
import {
  findRunc,
  makeBusyboxBundle,
  type RunningShim,
  startShim,
  stopShim,
} from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { exitEventOf, metric } from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";
import { MemoryCgroups } from "../src/sys/memory_cgroup.ts";
import type { ExitEvent } from "../src/store/events.ts";
import type { ContainerRecord } from "../src/types.ts";

const withRuncAndMemcg = needs("root", "runc", "busybox", "cc", "memory-cgroup");

/** Waits for /dev/shm/go (written by the test through the container's root), then runs `then`. */
function afterGo(then: string): string[] {
  return ["sh", "-c", `while [ ! -e /dev/shm/go ]; do sleep 0.05; done; ${then}`];
}

interface Started {
  id: string;
  stateDir: string;
  shim: RunningShim;
}

async function startRunc(
  d: TestDaemon,
  runc: string,
  id: string,
  argv: string[],
  limitBytes: number,
): Promise<Started> {
  const stateDir = `${d.stateRoot}/runc/${id}`;
  const bundle = `${d.dir}/bundle-${id}`;
  await makeBusyboxBundle(bundle, argv, runc);
  const config = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
  // memory + swap: without a swap limit the kernel would swap instead of killing.
  config.linux.resources.memory = { limit: limitBytes, swap: limitBytes };
  await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(config));
  const created = await d.api("POST", "/v1/fifos", { stateDir });
  assert.equal(created.status, 200, created.text);
  const shim = await startShim({ stateDir, mode: { kind: "runc", runc, id, bundle } });
  return { id, stateDir, shim };
}

async function runcDelete(runc: string, s: Started | undefined): Promise<void> {
  if (s === undefined) return;
  await stopShim(s.shim);
  await new Deno.Command(runc, {
    args: ["--root", `${s.stateDir}/runc`, "delete", "--force", s.id],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
}

function oomMetric(text: string): number {
  const value = metric(text, "reaperd_oom_kills_total");
  assert.ok(value !== null, `no reaperd_oom_kills_total in:\n${text}`);
  return value;
}

async function exitEvent(d: TestDaemon, id: string): Promise<ExitEvent> {
  const event = await exitEventOf(d, id);
  assert.ok(event !== undefined, `no exit event for ${id}`);
  return event;
}

withRuncAndMemcg.test(
  "daemon + runc: a container over its memory limit is recorded oomKilled; a kill -9 is not",
  async () => {
    const runc = findRunc();
    const d = await TestDaemon.start({ runtimes: { runc: { path: runc } } });
    const suffix = crypto.randomUUID().slice(0, 8);
    let hog: Started | undefined;
    let killed: Started | undefined;
    try {
      assert.equal(oomMetric((await d.api("GET", "/metrics")).text), 0, "0 before any OOM");

      // 16 MiB limit; `tail /dev/zero` keeps one ever-growing line in memory.
      hog = await startRunc(d, runc, `oom-${suffix}`, afterGo("tail /dev/zero"), 16 << 20);
      const monitored = await d.cli(
        "monitor",
        hog.id,
        "--runtime",
        "runc",
        "--state-dir",
        hog.stateDir,
        "--pid",
        String(hog.shim.container.pid),
        "--ppid",
        String(hog.shim.shim.pid),
        "--json",
      );
      assert.equal(monitored.code, 0, monitored.stderr);
      const running = JSON.parse(monitored.stdout) as ContainerRecord;
      // Found from /proc/<pid>/cgroup: the cgroup runc made for this container.
      assert.ok(running.memoryCgroup !== undefined, monitored.stdout);
      assert.match(running.memoryCgroup.dir, new RegExp(`/${hog.id}$`));
      assert.equal(running.memoryCgroup.oomKills, 0);

      const waiting = d.cli("wait", hog.id, "--timeout", "60", "--json");
      await Deno.writeTextFile(`/proc/${hog.shim.container.pid}/root/dev/shm/go`, "");
      const waited = await waiting;
      assert.equal(waited.code, 137, `${waited.stdout}${waited.stderr}\n${d.logs}`);
      const fromWait = JSON.parse(waited.stdout) as ContainerRecord;
      assert.equal(fromWait.exit?.oomKilled, true, waited.stdout);
      assert.deepEqual([fromWait.exit?.code, fromWait.exit?.signal], [137, 9]);
      assert.match(fromWait.exit?.reason ?? "", /killed by signal 9 .*out of memory/);

      const inspected = JSON.parse((await d.cli("inspect", hog.id, "--json")).stdout);
      assert.equal(inspected.exit.oomKilled, true);
      const table = (await d.cli("inspect", hog.id)).stdout;
      assert.match(table, /^exit: +137 \(SIGKILL, OOM\)$/m, table);
      const event = await exitEvent(d, hog.id);
      assert.equal(event.detail.exit.oomKilled, true);
      assert.equal(oomMetric((await d.api("GET", "/metrics")).text), 1);

      // The same signal by hand, with the cgroup named by the engine: not an OOM kill.
      killed = await startRunc(d, runc, `kill-${suffix}`, afterGo("sleep 1000"), 16 << 20);
      const dir = running.memoryCgroup.dir.replace(/[^/]+$/, killed.id);
      const res = await d.api("POST", "/v1/containers", {
        id: killed.id,
        runtime: "runc",
        stateDir: killed.stateDir,
        pid: killed.shim.container.pid,
        ppid: killed.shim.shim.pid,
        memoryCgroup: dir,
      });
      assert.equal(res.status, 201, res.text);
      assert.deepEqual((res.body as ContainerRecord).memoryCgroup, { dir, oomKills: 0 });
      await Deno.writeTextFile(`/proc/${killed.shim.container.pid}/root/dev/shm/go`, "");
      Deno.kill(killed.shim.container.pid, "SIGKILL");
      const after = (await d.api("GET", `/v1/containers/${killed.id}/wait?timeout=30`))
        .body as ContainerRecord;
      assert.deepEqual([after.exit?.code, after.exit?.signal], [137, 9], JSON.stringify(after));
      assert.equal(after.exit?.oomKilled, false, JSON.stringify(after));
      assert.doesNotMatch(after.exit?.reason ?? "", /memory/);
      assert.equal(oomMetric((await d.api("GET", "/metrics")).text), 1);

      // A directory that is no memory cgroup is refused at the door.
      const bad = await d.api("POST", "/v1/containers", {
        id: `bad-${suffix}`,
        runtime: "runc",
        stateDir: `${d.stateRoot}/runc/bad-${suffix}`,
        pid: Deno.pid,
        ppid: 0,
        memoryCgroup: "/etc",
      });
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.text, /memoryCgroup \/etc is no memory cgroup/);
    } finally {
      await runcDelete(runc, hog);
      await runcDelete(runc, killed);
      await d.dispose();
    }
  },
);

withRuncAndMemcg.test(
  "daemon + runc: a container killed for memory before monitor ran is still recorded oomKilled",
  async () => {
    const runc = findRunc();
    const d = await TestDaemon.start({ runtimes: { runc: { path: runc } } });
    let early: Started | undefined;
    try {
      early = await startRunc(
        d,
        runc,
        `early-${crypto.randomUUID().slice(0, 8)}`,
        afterGo("tail /dev/zero"),
        16 << 20,
      );
      // The engine knows the cgroup it had the runtime make; here it is read while it runs.
      const memoryCgroup = new MemoryCgroups().markOf(early.shim.container.pid)?.dir;
      assert.ok(memoryCgroup !== undefined, "the container has a memory cgroup of its own");
      await Deno.writeTextFile(`/proc/${early.shim.container.pid}/root/dev/shm/go`, "");
      // The shim reaps the container and writes its status into the FIFO reaperd holds.
      assert.equal((await early.shim.status).code, 0);
      const monitored = await d.cli(
        "monitor",
        early.id,
        "--runtime",
        "runc",
        "--state-dir",
        early.stateDir,
        "--pid",
        String(early.shim.container.pid),
        "--start-time",
        String(early.shim.container.startTime),
        "--ppid",
        "0",
        "--memory-cgroup",
        memoryCgroup,
      );
      assert.equal(monitored.code, 0, monitored.stderr);
      const waited = await d.cli("wait", early.id, "--timeout", "30", "--json");
      assert.equal(waited.code, 137, `${waited.stdout}${waited.stderr}\n${d.logs}`);
      const record = JSON.parse(waited.stdout) as ContainerRecord;
      assert.deepEqual(record.memoryCgroup, { dir: memoryCgroup, oomKills: 0 });
      assert.equal(record.exit?.oomKilled, true, waited.stdout);
    } finally {
      await runcDelete(runc, early);
      await d.dispose();
    }
  },
);
