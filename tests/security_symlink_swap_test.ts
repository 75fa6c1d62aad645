/**
 * Symlink swaps under a container's registered paths. The paths lie inside a directory an
 * unprivileged user owns; after registration that user moves the directory away and puts a
 * symlink in its place, pointing at a directory of the host with an unrelated mount and a
 * root-owned file under the same names. Cleanup runs as root: it must neither unmount the
 * unrelated mount nor delete the host's file, and must not call the container stopped while
 * its real mount is still there. It refuses, and says why; the same when the directory only
 * moved away; and it finishes once the directory is back.
 */

import assert from "node:assert/strict";
import { isMountPoint } from "../src/sys/mounts.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { exists, forceUnmount, runOk as run } from "./support/fs.ts";
import {
  crashRuntime,
  gcEntry,
  record,
  report,
  sleep,
  startContainer,
  type TestContainer,
  waitFor,
} from "./support/fault_util.ts";

const RT = "crt";
const NOBODY = 65534;

/** Runs `argv` as the unprivileged user, as that user would. */
async function asNobody(...argv: string[]): Promise<void> {
  await run(
    "setpriv",
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    "--clear-groups",
    "--",
    ...argv,
  );
}

Deno.test("security: a symlink swapped in above registered paths turns no cleanup against the host", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-swap-", suffix: ".log" });
  const top = await Deno.makeTempDir({ prefix: "reaperd-swap-" });
  await Deno.chmod(top, 0o755);
  // The user's own directory, and in it the container's: a mount point and a file.
  const userDir = `${top}/user`;
  const box = `${userDir}/box`;
  // The host's: an unrelated mount and a root-owned file, under the same names.
  const host = `${top}/host`;
  const hostSource = `${top}/host-source`;
  const boxSource = `${top}/box-source`;
  const daemon = await TestDaemon.start({
    runtimes: crashRuntime(RT, log),
    gc: { backoffBaseMs: 100, backoffMaxMs: 400, stepTimeoutMs: 5_000 },
  });
  let c: TestContainer | undefined;
  const mounts: string[] = [];
  try {
    for (const d of [userDir, host, hostSource, boxSource]) await Deno.mkdir(d);
    await Deno.chown(userDir, NOBODY, NOBODY);
    await asNobody("mkdir", box, `${box}/rootfs`);
    await asNobody("touch", `${box}/hosts`);
    await Deno.writeTextFile(`${boxSource}/container-file`, "the container's\n");
    await run("mount", "--bind", boxSource, `${box}/rootfs`);
    mounts.push(`${box}/rootfs`);
    await Deno.mkdir(`${host}/rootfs`);
    await Deno.writeTextFile(`${hostSource}/precious`, "keep me\n");
    await run("mount", "--bind", hostSource, `${host}/rootfs`);
    mounts.push(`${host}/rootfs`);
    await Deno.writeTextFile(`${host}/hosts`, "root's own\n");

    c = await startContainer(daemon, {
      id: "swapped",
      runtime: RT,
      monitor: { mounts: [`${box}/rootfs`], paths: [`${box}/hosts`] },
    });

    // The user swaps: the box moves away (its mount moves with it), a symlink takes its place.
    await asNobody("mv", box, `${userDir}/moved`);
    mounts.push(`${userDir}/moved/rootfs`, `${box}/rootfs`);
    await asNobody("ln", "-s", host, box);
    assert.ok(isMountPoint(`${userDir}/moved/rootfs`));

    await c.exit(4);
    const entry = await waitFor("refused cleanup (or, wrongly, a finished one)", async () => {
      const e = await gcEntry(daemon, "swapped");
      if (e !== null && e.attempts >= 3) return e;
      return (await record(daemon, "swapped"))?.state === "stopped" ? "stopped" : null;
    });
    assert.ok(isMountPoint(`${host}/rootfs`), "cleanup unmounted the host's unrelated mount");
    assert.equal(await Deno.readTextFile(`${hostSource}/precious`), "keep me\n");
    assert.ok(await exists(`${host}/hosts`), "cleanup deleted the host's file");
    assert.equal(await Deno.readTextFile(`${host}/hosts`), "root's own\n");
    assert.ok(isMountPoint(`${userDir}/moved/rootfs`), "the container's mount is still there");
    assert.notEqual(entry, "stopped", "stopped while the container's mount remains");
    assert.ok(entry !== "stopped");
    assert.equal(entry.lastStep, "unmount");
    assert.match(entry.lastError ?? "", /symlink/);
    const r = await record(daemon, "swapped");
    assert.equal(r?.exit?.code, 4);

    // The same names, as a symlink at the last component only: refused just the same.
    await Deno.remove(box);
    await asNobody("mkdir", box);
    await asNobody("ln", "-s", `${host}/rootfs`, `${box}/rootfs`);
    await asNobody("ln", "-s", `${host}/hosts`, `${box}/hosts`);
    const before = entry.attempts;
    const later = await waitFor("more refused attempts", async () => {
      const e = await gcEntry(daemon, "swapped");
      return e !== null && e.attempts >= before + 2 ? e : null;
    });
    assert.equal(later.lastStep, "unmount");
    assert.match(later.lastError ?? "", /symlink/);
    await sleep(100);
    assert.ok(isMountPoint(`${host}/rootfs`), "cleanup unmounted through the last symlink");
    assert.equal(await Deno.readTextFile(`${host}/hosts`), "root's own\n");

    // No symlink at all, the box just moved: its mount is not "gone".
    await asNobody("rm", "-r", box);
    const third = later.attempts;
    const moved = await waitFor("refusals of a mount that moved", async () => {
      const e = await gcEntry(daemon, "swapped");
      return e !== null && e.attempts >= third + 2 ? e : null;
    });
    assert.equal(moved.lastStep, "unmount");
    assert.match(moved.lastError ?? "", /may have been moved/);
    assert.ok(isMountPoint(`${userDir}/moved/rootfs`));
    assert.notEqual((await record(daemon, "swapped"))?.state, "stopped");

    // Moved back where it was registered: cleaned up, and only what was the container's.
    await asNobody("mv", `${userDir}/moved`, box);
    const done = await waitFor("the cleanup", async () => {
      const r = await record(daemon, "swapped");
      return r?.state === "stopped" ? r : null;
    });
    assert.equal(done.exit?.code, 4);
    assert.equal(isMountPoint(`${box}/rootfs`), false);
    assert.ok(!(await exists(`${box}/hosts`)));
    assert.equal(await Deno.readTextFile(`${boxSource}/container-file`), "the container's\n");
    assert.ok(isMountPoint(`${host}/rootfs`));
    assert.equal(await Deno.readTextFile(`${host}/hosts`), "root's own\n");
    report(
      `security symlink-swap: ${moved.attempts} refused cleanups (through a swapped dir, a ` +
        `last-component symlink, a moved dir: "${later.lastError}"), host mount and file ` +
        `intact, cleaned once moved back`,
    );
  } finally {
    for (const m of mounts.reverse()) await forceUnmount(m);
    await stopShim(c?.shim);
    await daemon.dispose();
    await Deno.remove(top, { recursive: true });
    await Deno.remove(log);
  }
});
