import assert from "node:assert/strict";
import { SysError } from "./errno.ts";
import {
  isAtOrUnder,
  isMountPoint,
  parseMountInfo,
  readMountInfo,
  unescapeMountField,
  unmount,
} from "./mounts.ts";
import { runOk } from "../../tests/support/fs.ts";
import { needs } from "../../tests/support/needs.ts";

const asRoot = needs("root");

const SAMPLE = [
  "21 26 0:20 / /proc rw,relatime - proc proc rw",
  "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
  "40 26 0:35 / /sys/fs/cgroup/freezer rw,relatime shared:9 - cgroup cgroup rw,freezer",
  "garbage line",
  "",
].join("\n");

Deno.test("parseMountInfo reads every field and unescapes paths", () => {
  const mounts = parseMountInfo(SAMPLE);
  assert.equal(mounts.length, 3);
  assert.deepEqual(mounts[1], {
    id: 36,
    parentId: 35,
    device: "98:0",
    root: "/mnt1",
    mountPoint: "/mnt/with space",
    options: "rw,noatime",
    optionalFields: ["master:1", "shared:7"],
    fsType: "ext3",
    source: "/dev/root",
    superOptions: "rw,errors=continue",
  });
  assert.equal(mounts[2]?.superOptions, "rw,freezer");
});

Deno.test("unescapeMountField handles space, tab, newline and backslash", () => {
  assert.equal(unescapeMountField("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
  assert.equal(unescapeMountField("plain"), "plain");
});

Deno.test("isAtOrUnder compares whole path components", () => {
  assert.ok(isAtOrUnder("/a/b", "/a/b"));
  assert.ok(isAtOrUnder("/a/b/c", "/a/b/"));
  assert.ok(isAtOrUnder("/a/b/./c", "/a//b"));
  assert.ok(!isAtOrUnder("/a/bc", "/a/b"));
  assert.ok(!isAtOrUnder("/a", "/a/b"));
  assert.ok(isAtOrUnder("/anything", "/"));
});

Deno.test("isMountPoint tells a sample's mount points", () => {
  const mounts = parseMountInfo(SAMPLE);
  assert.ok(isMountPoint("/proc", mounts));
  assert.ok(!isMountPoint("/proc/self", mounts));
});

function mountPointsUnder(dir: string): string[] {
  return readMountInfo().map((m) => m.mountPoint).filter((p) => isAtOrUnder(p, dir));
}

asRoot.test("a real bind mount (path with a space) is seen, refused while busy, unmounted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-mounts-" });
  const source = `${dir}/source`;
  const target = `${dir}/tar get`;
  let mounted = false;
  let file: Deno.FsFile | undefined;
  try {
    await Deno.mkdir(source);
    await Deno.mkdir(target);
    await Deno.writeTextFile(`${source}/keep`, "host data");
    await runOk("mount", "--bind", source, target);
    mounted = true;

    assert.ok(isMountPoint(target));
    assert.deepEqual(mountPointsUnder(dir), [target]);
    // A bind mount's root is its source, relative to the root of the filesystem it lives on.
    assert.ok(readMountInfo().find((m) => m.mountPoint === target)?.root.endsWith("/source"));

    // An open file keeps a plain unmount from succeeding; that must be reported.
    file = await Deno.open(`${target}/keep`);
    assert.throws(() => unmount(target), (e) => e instanceof SysError && e.code === "EBUSY");
    assert.ok(isMountPoint(target));
    file.close();
    file = undefined;

    assert.equal(unmount(target), "unmounted");
    mounted = false;
    assert.equal(unmount(target), "not-mounted");
    assert.equal(unmount(`${dir}/missing`), "not-mounted");
    assert.deepEqual(mountPointsUnder(dir), []);
    assert.equal(await Deno.readTextFile(`${source}/keep`), "host data");
  } finally {
    file?.close();
    if (mounted) await runOk("umount", target);
    await Deno.remove(dir, { recursive: true });
  }
});
