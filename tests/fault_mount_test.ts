/**
 * Busy mounts (issue 5): a bind mount the test makes inside a container's state dir. Cleanup
 * must never walk into it (the mounted host dir keeps every file), GC retries with backoff
 * while it is there, and the container is stopped once the mount goes away. The same for a
 * mount that cleanup itself must unmount but that a process keeps busy.
 */

import assert from "node:assert/strict";
import { isMountPoint } from "../src/sys/mounts.ts";
import { isEvent } from "../src/store/events.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { forceUnmount, runOk as run } from "./support/fs.ts";
import {
  allEvents,
  crashRuntime,
  gcEntry,
  report,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const asRootWithCc = needs("root", "cc");

const RT = "crt";

/** A host dir with a file that must survive every cleanup. */
async function hostDir(): Promise<{ dir: string; canary: string }> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-fault-host-" });
  const canary = `${dir}/precious`;
  await Deno.writeTextFile(canary, "keep me\n");
  return { dir, canary };
}

asRootWithCc.test("fault: a bind mount inside the state dir blocks its removal; GC backs off and finishes once unmounted", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-fault-mount-", suffix: ".log" });
  const host = await hostDir();
  const daemon = await TestDaemon.start({
    runtimes: crashRuntime(RT, log),
    gc: { backoffBaseMs: 100, backoffMaxMs: 400 },
  });
  let c: TestContainer | undefined;
  let mountPoint = "";
  try {
    c = await startContainer(daemon, { id: "busy", runtime: RT });
    mountPoint = `${c.stateDir}/rootfs`;
    await Deno.mkdir(mountPoint);
    await run("mount", "--bind", host.dir, mountPoint);
    await c.exit(2);

    const entry = await waitFor("several refused removals", async () => {
      const e = await gcEntry(daemon, "busy");
      return e !== null && e.attempts >= 4 ? e : null;
    });
    assert.equal(entry.lastStep, "remove-state-dir");
    assert.match(entry.lastError ?? "", /EBUSY.*rootfs/);
    assert.equal(
      await Deno.readTextFile(host.canary),
      "keep me\n",
      "cleanup walked into the mount",
    );
    // Backoff: the due times were spaced out and capped, never a hot loop.
    const tries = (await allEvents(daemon)).filter(isEvent("gc-attempt")).filter((e) =>
      e.id === "busy"
    );
    for (const e of tries) {
      const delay = (e.detail.nextAttemptAt as number) - e.at;
      assert.ok(delay >= 50 - 2 && delay <= 400 + 2, `retry delay ${delay} ms out of [50, 400]`);
    }

    await run("umount", mountPoint);
    const done = await waitStopped(daemon, "busy");
    assert.deepEqual([done.exit?.code, done.exit?.known], [2, true]);
    await assert.rejects(Deno.stat(c.stateDir), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(host.canary), "keep me\n");
    report(`fault busy-mount: ${tries.length + 1} refused removals, canary intact, 0 lost`);
  } finally {
    if (mountPoint !== "") await forceUnmount(mountPoint);
    await stopShim(c?.shim);
    await daemon.dispose();
    await Deno.remove(host.dir, { recursive: true });
    await Deno.remove(log);
  }
});

asRootWithCc.test("fault: a registered mount kept busy by a process is retried until the process lets go", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-fault-mount-", suffix: ".log" });
  const host = await hostDir();
  const daemon = await TestDaemon.start({
    runtimes: crashRuntime(RT, log),
    gc: { backoffBaseMs: 100, backoffMaxMs: 400 },
  });
  let c: TestContainer | undefined;
  let holder: Deno.ChildProcess | undefined;
  const id = "held";
  const mountPoint = `${daemon.stateRoot}/${RT}/${id}/rootfs`;
  try {
    await Deno.mkdir(mountPoint, { recursive: true });
    await run("mount", "--bind", host.dir, mountPoint);
    // A process whose working directory is inside the mount: umount says EBUSY.
    holder = new Deno.Command("sleep", { args: ["600"], cwd: mountPoint, stdin: "null" }).spawn();
    c = await startContainer(daemon, { id, runtime: RT, monitor: { mounts: [mountPoint] } });
    await c.exit(5);

    const entry = await waitFor("refused unmounts", async () => {
      const e = await gcEntry(daemon, id);
      return e !== null && e.attempts >= 3 ? e : null;
    });
    assert.equal(entry.lastStep, "unmount");
    assert.match(entry.lastError ?? "", /EBUSY/);
    assert.ok(isMountPoint(mountPoint), "a busy mount must not be detached lazily");

    holder.kill("SIGKILL");
    await holder.status;
    holder = undefined;
    const done = await waitStopped(daemon, id);
    assert.deepEqual([done.exit?.code, done.exit?.known], [5, true]);
    assert.equal(isMountPoint(mountPoint), false);
    await assert.rejects(Deno.stat(c.stateDir), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(host.canary), "keep me\n");
    report(
      `fault busy-registered-mount: ${entry.attempts}+ refused unmounts, then unmounted, 0 lost`,
    );
  } finally {
    if (holder !== undefined) {
      holder.kill("SIGKILL");
      await holder.status;
    }
    await forceUnmount(mountPoint);
    await stopShim(c?.shim);
    await daemon.dispose();
    await Deno.remove(host.dir, { recursive: true });
    await Deno.remove(log);
  }
});
