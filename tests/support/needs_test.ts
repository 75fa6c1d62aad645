import assert from "node:assert/strict";
import {
  describeMissing,
  findOnPath,
  isStaticElf,
  type Machine,
  missingNeeds,
  needs,
} from "./needs.ts";

/** A machine whose PATH is one temp dir holding executables named `tools`. */
async function machineWith(tools: string[], uid = 0): Promise<{ m: Machine; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-needs-" });
  for (const tool of tools) {
    await Deno.writeTextFile(`${dir}/${tool}`, "#!/bin/sh\n", { mode: 0o755 });
  }
  const m: Machine = {
    uid,
    env: { PATH: dir },
    exists: (path) => path === "/usr/include/stdio.h",
  };
  return { m, dir };
}

Deno.test("missingNeeds finds tools on PATH only, and names the package and command for each", async () => {
  const { m, dir } = await machineWith(["runc", "cc"]);
  try {
    assert.deepEqual(missingNeeds(["root", "runc", "cc"], m), []);
    const missing = missingNeeds(["root", "runc", "systemd-analyze", "freezer-v1"], {
      ...m,
      uid: 1000,
      env: { PATH: "/nonexistent" },
    });
    assert.deepEqual(missing.map((x) => x.need), ["root", "runc", "systemd-analyze", "freezer-v1"]);
    assert.equal(
      describeMissing(missing),
      "ignored: not root, no runc on PATH, no systemd-analyze on PATH, no cgroup v1 freezer at " +
        "/sys/fs/cgroup/freezer; to run it: as root: apt-get install -y runc systemd; " +
        "sudo npx --yes deno@2.9.6 task test; mkdir -p /sys/fs/cgroup/freezer && " +
        "mount -t cgroup -o freezer freezer /sys/fs/cgroup/freezer",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missingNeeds: a compiler without libc headers, $CC, and a dynamic busybox are missing", async () => {
  const { m, dir } = await machineWith(["gcc-12"]);
  try {
    assert.deepEqual(missingNeeds(["cc"], { ...m, env: { PATH: dir, CC: "gcc-12" } }), []);
    const noHeaders = missingNeeds(["cc"], {
      ...m,
      env: { PATH: dir, CC: "gcc-12" },
      exists: () => false,
    });
    assert.deepEqual(noHeaders.map((x) => x.packages), [["gcc", "libc6-dev"]]);
    assert.deepEqual(missingNeeds(["cc"], m).map((x) => x.why), [
      "no C compiler (cc) with libc headers",
    ]);
    // A shell script named busybox is no static ELF.
    await Deno.writeTextFile(`${dir}/busybox`, "#!/bin/sh\n", { mode: 0o755 });
    assert.deepEqual(missingNeeds(["busybox"], m).map((x) => x.packages), [["busybox-static"]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findOnPath skips files that are not executable and directories", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-needs-" });
  try {
    await Deno.writeTextFile(`${dir}/runc`, "", { mode: 0o644 });
    await Deno.mkdir(`${dir}/crun`);
    assert.equal(findOnPath("runc", { PATH: dir }), null);
    assert.equal(findOnPath("crun", { PATH: dir }), null);
    await Deno.chmod(`${dir}/runc`, 0o755);
    assert.equal(findOnPath("runc", { PATH: `/nonexistent::${dir}` }), `${dir}/runc`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isStaticElf tells an ELF without PT_INTERP from deno's own dynamic binary", async () => {
  assert.equal(isStaticElf(Deno.execPath()), false, "deno is dynamically linked");
  const dir = await Deno.makeTempDir({ prefix: "reaperd-needs-" });
  try {
    // The smallest 64-bit ELF header: no program headers at all, so no interpreter.
    const header = new Uint8Array(64);
    header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    await Deno.writeFile(`${dir}/static`, header);
    assert.equal(isStaticElf(`${dir}/static`), true);
    await Deno.writeTextFile(`${dir}/script`, "#!/bin/sh\n".padEnd(100, "#"));
    assert.equal(isStaticElf(`${dir}/script`), false);
    assert.equal(isStaticElf(`${dir}/missing`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("needs() lists what this machine lacks: nothing for what a root test host has", () => {
  assert.equal(needs("root").missing.length === 0, Deno.uid() === 0);
  assert.deepEqual(needs().missing, []);
});
