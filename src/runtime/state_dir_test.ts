import assert from "node:assert/strict";
import { parseMountInfo } from "../sys/mounts.ts";
import { removeStateDir, stateDirPathProblem } from "./state_dir.ts";

Deno.test("stateDirPathProblem wants an absolute, normalized path strictly inside the root", () => {
  const root = "/var/run/isulad";
  assert.equal(stateDirPathProblem("/var/run/isulad/runc/c1", root), null);
  assert.equal(stateDirPathProblem("/var/run/isulad/runc/c1/", root + "/"), null);
  for (
    const bad of [
      "runc/c1",
      "/var/run/isulad",
      "/var/run/isulad/../isulad-other/c1",
      "/var/run/isulad/runc/./c1",
      "/var/run/isulad//runc/c1",
      "/var/run/isuladX/runc/c1",
      "/etc",
    ]
  ) {
    assert.notEqual(stateDirPathProblem(bad, root), null, bad);
  }
  assert.notEqual(stateDirPathProblem("/var/run/isulad/runc/c1", "relative"), null);
});

Deno.test("removeStateDir removes a plain dir, and a missing one is done", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = `${root}/runc/c1`;
    await Deno.mkdir(`${dir}/runc/c1`, { recursive: true });
    await Deno.writeTextFile(`${dir}/runc/c1/state.json`, "{}");
    assert.deepEqual(removeStateDir(dir, root), { ok: true, detail: "removed" });
    assert.deepEqual(removeStateDir(dir, root), { ok: true, detail: "already gone" });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("removeStateDir refuses when the mount table shows a mount inside", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = `${root}/runc/c1`;
    await Deno.mkdir(dir, { recursive: true });
    const mounts = parseMountInfo(`99 1 0:1 / ${dir}/rootfs/proc rw - proc proc rw\n`);
    const out = removeStateDir(dir, root, () => mounts);
    assert.equal(out.ok, false);
    assert.ok(!out.ok && out.code === "EBUSY" && out.detail.includes(`${dir}/rootfs/proc`));
    await Deno.stat(dir);
    // Without a mount table, nothing is removed either.
    const blind = removeStateDir(dir, root, () => {
      throw new Error("no procfs");
    });
    assert.ok(!blind.ok && blind.code === "EIO");
    await Deno.stat(dir);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("removeStateDir refuses a dir reached through a symlink out of the root", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const root = `${tmp}/root`;
    const outside = `${tmp}/outside`;
    await Deno.mkdir(`${outside}/c1`, { recursive: true });
    await Deno.writeTextFile(`${outside}/c1/precious`, "x");
    await Deno.mkdir(root);
    await Deno.symlink(outside, `${root}/runc`);
    const out = removeStateDir(`${root}/runc/c1`, root);
    assert.ok(!out.ok && out.code === "EINVAL" && /symlink/.test(out.detail), out.detail);
    assert.equal(await Deno.readTextFile(`${outside}/c1/precious`), "x");

    await Deno.writeTextFile(`${root}/file`, "x");
    const notDir = removeStateDir(`${root}/file`, root);
    assert.ok(!notDir.ok && /not a directory/.test(notDir.detail));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("removeStateDir never enters a real mount inside, even when the mount table misses it", async () => {
  const tmp = await Deno.makeTempDir();
  const root = `${tmp}/root`;
  const dir = `${root}/runc/c1`;
  const target = `${dir}/rootfs/inner`;
  let mounted = false;
  try {
    await Deno.mkdir(target, { recursive: true });
    await Deno.mkdir(`${tmp}/host`);
    await Deno.writeTextFile(`${tmp}/host/precious`, "x");
    const bind = await new Deno.Command("mount", { args: ["--bind", `${tmp}/host`, target] })
      .output();
    assert.ok(bind.success);
    mounted = true;
    const out = removeStateDir(dir, root, () => []);
    assert.ok(!out.ok && out.code === "EBUSY", JSON.stringify(out));
    assert.match(out.detail, /rootfs\/inner/);
    assert.equal(await Deno.readTextFile(`${tmp}/host/precious`), "x");
  } finally {
    if (mounted) await new Deno.Command("umount", { args: [target] }).output();
    await Deno.remove(tmp, { recursive: true });
  }
});
