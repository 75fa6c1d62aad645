import assert from "node:assert/strict";
import { isMountPoint } from "../sys/mounts.ts";
import { runPathOp } from "./path_ops.ts";
import { exists, runOk } from "../../tests/support/fs.ts";

Deno.test("remove takes a file and an empty dir; a missing path is done", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-pathops-" });
  try {
    await Deno.writeTextFile(`${tmp}/file`, "x");
    await Deno.mkdir(`${tmp}/dir`);
    assert.deepEqual(runPathOp({ op: "remove", path: `${tmp}/file` }), {
      ok: true,
      detail: `removed ${tmp}/file`,
    });
    assert.equal((runPathOp({ op: "remove", path: `${tmp}/dir` })).ok, true);
    assert.equal(
      (runPathOp({ op: "remove", path: `${tmp}/dir` })).detail,
      `${tmp}/dir already gone`,
    );
    assert.equal((runPathOp({ op: "remove", path: `${tmp}/gone/x` })).ok, true);
    assert.ok(!(await exists(`${tmp}/file`)) && !(await exists(`${tmp}/dir`)));
    const relative = runPathOp({ op: "remove", path: "relative/x" });
    assert.ok(!relative.ok && /not absolute/.test(relative.detail));
    const root = runPathOp({ op: "remove", path: "/" });
    assert.equal(root.ok, false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("remove refuses a symlink on the way or at the end, and its target survives", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-pathops-" });
  try {
    await Deno.mkdir(`${tmp}/real`);
    await Deno.writeTextFile(`${tmp}/real/precious`, "x");
    await Deno.symlink(`${tmp}/real`, `${tmp}/link`);
    await Deno.symlink(`${tmp}/real/precious`, `${tmp}/real/pointer`);

    const through = runPathOp({ op: "remove", path: `${tmp}/link/precious` });
    assert.equal(through.ok, false);
    assert.equal(through.code, "ELOOP");
    assert.match(through.detail, /refusing to remove .*symlink/);
    const last = runPathOp({ op: "remove", path: `${tmp}/real/pointer` });
    assert.equal(last.ok, false);
    assert.match(last.detail, /symlink/);
    assert.equal(await Deno.readTextFile(`${tmp}/real/precious`), "x");
    assert.ok(await exists(`${tmp}/real/pointer`));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("unmount never goes through a symlink; the real path is unmounted layer by layer", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-pathops-" });
  const target = `${tmp}/real/mnt`;
  let layers = 0;
  try {
    await Deno.mkdir(`${tmp}/source`);
    await Deno.writeTextFile(`${tmp}/source/keep`, "host data");
    await Deno.mkdir(target, { recursive: true });
    await Deno.symlink(`${tmp}/real`, `${tmp}/link`);
    await Deno.symlink(target, `${tmp}/real/pointer`);
    for (; layers < 2; layers++) await runOk("mount", "--bind", `${tmp}/source`, target);

    for (const path of [`${tmp}/link/mnt`, `${tmp}/real/pointer`]) {
      const r = runPathOp({ op: "unmount", path });
      assert.equal(r.ok, false, path);
      assert.match(r.detail, /refusing to unmount .*symlink/);
      assert.ok(isMountPoint(target));
    }
    const r = runPathOp({ op: "unmount", path: target });
    assert.deepEqual(r, { ok: true, detail: `unmounted ${target}` });
    layers = 0;
    assert.equal(isMountPoint(target), false);
    assert.deepEqual(runPathOp({ op: "unmount", path: target }), {
      ok: true,
      detail: `${target} not mounted`,
    });
    assert.equal((runPathOp({ op: "unmount", path: `${tmp}/missing/x` })).ok, true);
    assert.equal(await Deno.readTextFile(`${tmp}/source/keep`), "host data");
  } finally {
    for (; layers > 0; layers--) await runOk("umount", target).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("remove-state-dir removes symlinks inside the tree, never what they point at", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-pathops-" });
  try {
    const root = `${tmp}/root`;
    const dir = `${root}/runc/c1`;
    await Deno.mkdir(`${dir}/runc/c1/deeper`, { recursive: true });
    await Deno.writeTextFile(`${dir}/runc/c1/deeper/state.json`, "{}");
    await Deno.mkdir(`${tmp}/host`);
    await Deno.writeTextFile(`${tmp}/host/precious`, "x");
    await Deno.symlink(`${tmp}/host`, `${dir}/to-dir`);
    await Deno.symlink(`${tmp}/host/precious`, `${dir}/runc/to-file`);
    const r = runPathOp({ op: "remove-state-dir", dir, root });
    assert.deepEqual(r, { ok: true, detail: `${dir} removed` });
    assert.ok(!(await exists(dir)));
    assert.equal(await Deno.readTextFile(`${tmp}/host/precious`), "x");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a symlink in the state root itself is followed for paths below it, and nowhere else", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-pathops-" });
  let mounted = false;
  const realDir = `${tmp}/run/isulad/rt/c1`;
  try {
    // As /var/run is a symlink to /run on most hosts.
    await Deno.mkdir(`${realDir}/rootfs`, { recursive: true });
    await Deno.mkdir(`${tmp}/var`);
    await Deno.symlink(`${tmp}/run`, `${tmp}/var/run`);
    const root = `${tmp}/var/run/isulad`;
    const dir = `${root}/rt/c1`;
    await Deno.writeTextFile(`${realDir}/leftover`, "x");
    await runOk("mount", "--bind", `${realDir}/rootfs`, `${realDir}/rootfs`);
    mounted = true;

    const blind = runPathOp({ op: "unmount", path: `${dir}/rootfs` });
    assert.match(blind.detail, /refusing to unmount/);
    const u = runPathOp({ op: "unmount", path: `${dir}/rootfs`, root });
    assert.deepEqual(u, { ok: true, detail: `unmounted ${dir}/rootfs` });
    mounted = false;
    assert.equal(isMountPoint(`${realDir}/rootfs`), false);
    const r = runPathOp({ op: "remove", path: `${dir}/leftover`, root });
    assert.deepEqual(r, { ok: true, detail: `removed ${dir}/leftover` });
    // Outside the root, the same symlink is refused.
    const other = runPathOp({ op: "remove", path: `${tmp}/var/run/x`, root });
    assert.match(other.detail, /refusing to remove/);
  } finally {
    if (mounted) await runOk("umount", `${realDir}/rootfs`).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});
