/**
 * Reused pids (issue 5): no code path may signal a process whose (pid, start time) does not
 * match the record. The pids of containers and shims that died while the daemon was down are
 * handed, for real, to new processes and threads (through ns_last_pid, see
 * tests/support/fault_pid_reuse.c); the daemon then restarts, restores, decides the exits and
 * cleans up, and every one of those newcomers must still be there. The same for GC entries
 * handed over with a pid that is alive under another start time.
 */

import assert from "node:assert/strict";
import { readProcStat } from "../src/sys/proc.ts";
import { Signal, signalProcess } from "../src/sys/signal.ts";
import type { ProcessIdentity } from "../src/types.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  buildPidReuse,
  crashRuntime,
  LineReader,
  record,
  report,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const asRootWithCc = needs("root", "cc");

const RT = "crt";

/** A process or thread that took a given pid. */
interface Canary {
  id: ProcessIdentity;
  mode: "process" | "thread";
}

/** The process that holds the canaries (they die with it). */
interface Holder {
  canaries: Canary[];
  child: Deno.ChildProcess;
  ended: boolean;
}

/** Gives each pid (free now) to a new process or thread; throws when someone else took one. */
async function takePids(wanted: { pid: number; mode: Canary["mode"] }[]): Promise<Holder> {
  const binary = await buildPidReuse();
  const child = new Deno.Command(binary, {
    args: wanted.map((w) => `${w.pid}:${w.mode}`),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = new LineReader(child.stdout);
  const line = await lines.next();
  await lines.cancel();
  const holder: Holder = { canaries: [], child, ended: false };
  child.status.then(() => holder.ended = true);
  if (line !== `ok ${wanted.map((w) => w.pid).join(" ")}`) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`could not take pids ${wanted.map((w) => w.pid)}: ${line}`);
  }
  for (const w of wanted) {
    holder.canaries.push({
      id: { pid: w.pid, startTime: readProcStat(w.pid)!.startTime },
      mode: w.mode,
    });
  }
  return holder;
}

/** Still there, untouched: the holder runs and the pid still names the same live task. */
function untouched(holder: Holder, c: Canary): boolean {
  const stat = readProcStat(c.id.pid);
  return !holder.ended && stat !== null && stat.startTime === c.id.startTime && stat.state !== "Z";
}

/** Kills a container and its shim (by identity) and waits until both pids are free. */
async function killContainer(c: TestContainer): Promise<void> {
  signalProcess(c.shim.container, Signal.SIGKILL);
  await c.shim.status;
  await waitFor(
    `pid ${c.shim.container.pid} to be free`,
    () => readProcStat(c.shim.container.pid) === null,
  );
  await waitFor(`pid ${c.shim.shim.pid} to be free`, () => readProcStat(c.shim.shim.pid) === null);
}

asRootWithCc.test("security: pids reused by processes and threads while the daemon was down are never signalled", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-pid-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  const containers: TestContainer[] = [];
  let holder: Holder | undefined;
  try {
    const a = await startContainer(daemon, { id: "a", runtime: RT });
    const b = await startContainer(daemon, { id: "b", runtime: RT });
    containers.push(a, b);
    await daemon.stop("SIGKILL");
    await killContainer(a);
    await killContainer(b);
    // Every recorded pid now names someone else: processes and threads, started later.
    holder = await takePids([
      { pid: a.shim.container.pid, mode: "process" },
      { pid: a.shim.shim.pid, mode: "thread" },
      { pid: b.shim.container.pid, mode: "thread" },
      { pid: b.shim.shim.pid, mode: "process" },
    ]);
    const canaries = holder.canaries;

    await daemon.restart();
    for (const id of ["a", "b"]) {
      const r = await waitStopped(daemon, id);
      assert.equal(r.exit?.known, false, `${id}: its status was lost with the daemon`);
      assert.match(r.exit?.reason ?? "", /while reaperd was down|without writing/);
    }
    // Give any stray signal time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const c of canaries) {
      assert.ok(untouched(holder, c), `the ${c.mode} that took pid ${c.id.pid} was signalled`);
    }
    assert.equal((await daemon.api("GET", "/v1/health")).status, 200);
    report(
      `security pid-reuse: ${canaries.length} reused pids (2 processes, 2 threads), 0 signalled`,
    );
  } finally {
    if (holder !== undefined) {
      holder.child.kill("SIGKILL");
      await holder.child.status;
    }
    for (const c of containers) await stopShim(c.shim);
    await daemon.dispose();
    await Deno.remove(log);
  }
});

asRootWithCc.test("security: GC handed a live pid under another start time cleans up without signalling it", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-pid-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  const sleepers: Deno.ChildProcess[] = [];
  try {
    const spawnSleeper = () => {
      const p = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
      sleepers.push(p);
      return { pid: p.pid, startTime: readProcStat(p.pid)!.startTime };
    };
    const container = spawnSleeper();
    const shim = spawnSleeper();
    const res = await daemon.api("POST", "/v1/gc", {
      id: "stale",
      runtime: RT,
      pid: container.pid,
      startTime: container.startTime + 7,
      ppid: shim.pid,
      pStartTime: shim.startTime + 7,
    });
    assert.equal(res.status, 200, res.text);
    await waitStopped(daemon, "stale");
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const id of [container, shim]) {
      assert.equal(readProcStat(id.pid)?.startTime, id.startTime, `pid ${id.pid} was signalled`);
      assert.notEqual(readProcStat(id.pid)?.state, "Z");
    }
    const r = await record(daemon, "stale");
    assert.equal(r?.state, "stopped");
    report("security pid-mismatch: gc add with 2 live pids under wrong start times, 0 signalled");
  } finally {
    for (const p of sleepers) {
      p.kill("SIGKILL");
      await p.status;
    }
    await daemon.dispose();
    await Deno.remove(log);
  }
});
