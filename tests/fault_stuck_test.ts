/**
 * Processes that will not die (issue 5): a container frozen by the cgroup v1 freezer, one
 * frozen through a parent cgroup that cleanup cannot thaw, and one in real uninterruptible
 * sleep (D state: blocked on a FUSE request its server read and never answers). Cleanup must
 * thaw what it can; for the rest GC must report the /proc state, retry with capped backoff,
 * keep cleaning other containers meanwhile, and finish once the process is released.
 */

import assert from "node:assert/strict";
import { readProcStat } from "../src/sys/proc.ts";
import { Signal, signalProcess } from "../src/sys/signal.ts";
import type { ProcessIdentity } from "../src/types.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { HungFuse } from "./support/hung_fuse.ts";
import {
  allEvents,
  crashRuntime,
  gcEntry,
  metric,
  report,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const withFreezer = needs("root", "freezer-v1", "cc");
const withFuse = needs("root", "fuse", "cc");

const RT = "crt";
const FREEZER = "/sys/fs/cgroup/freezer";
const CAP_MS = 600;

/** Dead for good: gone, its pid reused, or a zombie waiting for its reaper. */
function dead(id: ProcessIdentity): boolean {
  const stat = readProcStat(id.pid);
  return stat === null || stat.startTime !== id.startTime || stat.state === "Z";
}

function writeFile(path: string, text: string): void {
  Deno.writeTextFileSync(path, text, { create: false });
}

/** For `finally`: thaws, kills and removes a freezer cgroup tree (deepest first). */
async function dropCgroup(dirs: string[], pids: ProcessIdentity[]): Promise<void> {
  for (const dir of dirs) {
    try {
      writeFile(`${dir}/freezer.state`, "THAWED");
    } catch {
      // Gone already.
    }
  }
  for (const id of pids) signalProcess(id, Signal.SIGKILL);
  for (const dir of [...dirs].reverse()) {
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(dir);
        break;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
}

async function startDaemon(log: string): Promise<TestDaemon> {
  return await TestDaemon.start({
    runtimes: crashRuntime(RT, log),
    gc: { backoffBaseMs: 100, backoffMaxMs: CAP_MS },
  });
}

/**
 * While `stuckId` stays stuck, three more containers exit and one more is handed to GC: all
 * are cleaned up, each within a few seconds. Returns how many.
 */
async function othersGoOn(daemon: TestDaemon, stuckId: string): Promise<number> {
  const others: TestContainer[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      others.push(await startContainer(daemon, { id: `${stuckId}-other${i}`, runtime: RT }));
    }
    await Promise.all(others.map((c, i) => c.exit(20 + i)));
    for (const [i, c] of others.entries()) {
      const r = await waitStopped(daemon, c.id, 10_000);
      assert.equal(r.exit?.code, 20 + i);
    }
    // A GC entry of its own: its process is long gone, so one attempt ends it.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const added = await daemon.api("POST", "/v1/gc", {
      id: `${stuckId}-added`,
      runtime: RT,
      pid: gone.pid,
      ppid: 0,
      startTime: 1,
    });
    assert.equal(added.status, 200, added.text);
    await waitStopped(daemon, `${stuckId}-added`, 10_000);
    assert.ok((await gcEntry(daemon, stuckId)) !== null, `${stuckId} is still stuck meanwhile`);
    return others.length + 1;
  } finally {
    for (const c of others) await stopShim(c.shim);
  }
}

/** Checks that a stuck entry keeps being retried with delays within the cap. */
async function assertCappedRetries(daemon: TestDaemon, id: string, minAttempts: number) {
  const entry = await waitFor(`${minAttempts} attempts on ${id}`, async () => {
    const e = await gcEntry(daemon, id);
    return e !== null && e.attempts >= minAttempts ? e : null;
  }, 30_000);
  for (const e of await allEvents(daemon)) {
    if (e.id !== id || (e.kind !== "gc" && e.kind !== "gc-attempt")) continue;
    // A "gc" event from gc add carries no due time: its first attempt is due at once.
    if (typeof e.detail.nextAttemptAt !== "number") continue;
    const delay = e.detail.nextAttemptAt - e.at;
    assert.ok(
      delay >= 0 && delay <= CAP_MS + 2,
      `retry delay ${delay} ms above the ${CAP_MS} ms cap`,
    );
  }
  return entry;
}

withFreezer.test("fault: a container frozen by the v1 freezer is thawed and killed by cleanup", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-fault-frozen-", suffix: ".log" });
  const daemon = await startDaemon(log);
  const cg = `${FREEZER}/reaperd-test-${crypto.randomUUID()}`;
  let c: TestContainer | undefined;
  try {
    c = await startContainer(daemon, { id: "frozen", runtime: RT });
    Deno.mkdirSync(cg);
    writeFile(`${cg}/cgroup.procs`, String(c.shim.container.pid));
    writeFile(`${cg}/freezer.state`, "FROZEN");
    await waitFor(
      "the freeze",
      () => Deno.readTextFileSync(`${cg}/freezer.state`).trim() === "FROZEN",
    );
    assert.equal(readProcStat(c.shim.container.pid)?.state, "D");

    // The shim dies (as if killed): the FIFO hangs up with no status; the process is frozen.
    c.shim.child.kill("SIGKILL");
    const r = await waitStopped(daemon, "frozen");
    assert.equal(r.exit?.known, false);
    assert.match(r.exit?.reason ?? "", /without writing|no status/);
    assert.ok(dead(c.shim.container), "the frozen process was thawed and killed");
    assert.equal(Deno.readTextFileSync(`${cg}/freezer.state`).trim(), "THAWED");
    report("fault frozen: 1 frozen container thawed and killed by the first cleanup, 0 lost");
  } finally {
    await dropCgroup([cg], c ? [c.shim.container] : []);
    await stopShim(c?.shim);
    await daemon.dispose();
    await Deno.remove(log);
  }
});

withFreezer.test("fault: a freeze cleanup cannot undo: GC reports D, retries capped, others go on, done once thawed", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-fault-frozen-", suffix: ".log" });
  const daemon = await startDaemon(log);
  const parent = `${FREEZER}/reaperd-test-${crypto.randomUUID()}`;
  const inner = `${parent}/inner`;
  let c: TestContainer | undefined;
  try {
    c = await startContainer(daemon, { id: "icy", runtime: RT });
    Deno.mkdirSync(inner, { recursive: true });
    writeFile(`${inner}/cgroup.procs`, String(c.shim.container.pid));
    // Frozen from the parent: thawing the process's own cgroup changes nothing.
    writeFile(`${parent}/freezer.state`, "FROZEN");
    await waitFor("the freeze", () => readProcStat(c!.shim.container.pid)?.state === "D");
    c.shim.child.kill("SIGKILL");

    const entry = await assertCappedRetries(daemon, "icy", 4);
    assert.equal(entry.lastStep, "kill-container");
    assert.equal(entry.procState, "D");
    assert.match(entry.lastError ?? "", /still alive after SIGKILL \(state D\)/);
    const metrics = (await daemon.api("GET", "/metrics")).text;
    assert.equal(metric(metrics, 'reaperd_gc_entries{state="D"}'), 1);
    const others = await othersGoOn(daemon, "icy");

    writeFile(`${parent}/freezer.state`, "THAWED");
    const r = await waitStopped(daemon, "icy", 10_000);
    assert.equal(r.exit?.known, false);
    assert.ok(dead(c.shim.container));
    assert.equal(await gcEntry(daemon, "icy"), null);
    const after = (await daemon.api("GET", "/metrics")).text;
    assert.equal(metric(after, 'reaperd_gc_entries{state="D"}'), 0);
    report(
      `fault frozen-parent: ${entry.attempts}+ capped retries in D state, ${others} other ` +
        `containers cleaned meanwhile, done once thawed, 0 lost`,
    );
  } finally {
    await dropCgroup([parent, inner], c ? [c.shim.container] : []);
    await stopShim(c?.shim);
    await daemon.dispose();
    await Deno.remove(log);
  }
});

withFuse.test("fault: a process in D state (a FUSE request never answered): GC reports it, never blocks the others", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-fault-dstate-", suffix: ".log" });
  const daemon = await startDaemon(log);
  let fuse: HungFuse | undefined;
  let stuck: Deno.ChildProcess | undefined;
  try {
    fuse = await HungFuse.start();
    stuck = new Deno.Command("stat", {
      args: [`${fuse.mnt}/never`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    assert.equal(await fuse.nextLine(), `held ${stuck.pid}`);
    const start = readProcStat(stuck.pid)!.startTime;

    // Handed to GC (seed gc_add_container): SIGKILL turns the wait uninterruptible.
    const added = await daemon.api("POST", "/v1/gc", {
      id: "dstate",
      runtime: RT,
      pid: stuck.pid,
      ppid: 0,
      startTime: start,
    });
    assert.equal(added.status, 200, added.text);
    const entry = await assertCappedRetries(daemon, "dstate", 4);
    assert.equal(entry.lastStep, "kill-container");
    assert.equal(entry.procState, "D");
    assert.equal(readProcStat(stuck.pid)?.state, "D");
    const metrics = (await daemon.api("GET", "/metrics")).text;
    assert.equal(metric(metrics, 'reaperd_gc_entries{state="D"}'), 1);
    const gcView = await daemon.api("GET", "/v1/gc/dstate");
    assert.match(gcView.text, /"procState":"D"/);
    const others = await othersGoOn(daemon, "dstate");

    // The server goes away: the connection aborts, the request ends, SIGKILL lands.
    await fuse.kill();
    const status = await stuck.status;
    stuck = undefined;
    assert.equal(status.signal, "SIGKILL");
    const r = await waitStopped(daemon, "dstate", 10_000);
    assert.equal(r.state, "stopped");
    assert.equal(await gcEntry(daemon, "dstate"), null);
    report(
      `fault D-state: ${entry.attempts}+ capped retries on a process in D, ${others} other ` +
        `containers cleaned meanwhile, done once released, 0 lost`,
    );
  } finally {
    await fuse?.kill();
    if (stuck !== undefined) {
      stuck.kill("SIGKILL");
      await stuck.status;
    }
    await fuse?.dispose();
    await daemon.dispose();
    await Deno.remove(log);
  }
});
