import assert from "node:assert/strict";
import { needs } from "../../tests/support/needs.ts";
import {
  memoryCgroupDirOf,
  MemoryCgroups,
  oomKillsSince,
  parseOomKills,
  readOomKills,
} from "./memory_cgroup.ts";
import { parseMountInfo } from "./mounts.ts";

const HYBRID = parseMountInfo([
  "25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755",
  "30 25 0:27 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer",
  "31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
  "32 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
].join("\n"));
const V2 = parseMountInfo("28 24 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate");
const PROC_CGROUP = "6:freezer:/\n4:memory:/kubepods/c1\n0::/system.slice/c1.scope\n";

Deno.test("parseOomKills reads v1 memory.oom_control and v2 memory.events", () => {
  assert.equal(parseOomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
  assert.equal(
    parseOomKills("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"),
    2,
  );
  // Before Linux 4.13 v1 had no count: nothing can be told.
  assert.equal(parseOomKills("oom_kill_disable 0\nunder_oom 0\n"), null);
  assert.equal(parseOomKills("oom_group_kill 4\n"), null);
});

Deno.test("memoryCgroupDirOf maps /proc/<pid>/cgroup through the cgroup mounts", () => {
  assert.equal(memoryCgroupDirOf(PROC_CGROUP, HYBRID), "/sys/fs/cgroup/memory/kubepods/c1");
  assert.equal(memoryCgroupDirOf(PROC_CGROUP, V2), "/sys/fs/cgroup/system.slice/c1.scope");
  assert.equal(memoryCgroupDirOf("0::/a/b\n", V2), "/sys/fs/cgroup/a/b");
  // The root cgroup is no container's own: nothing to compare against.
  assert.equal(memoryCgroupDirOf("4:memory:/\n0::/\n", HYBRID), null);
  assert.equal(memoryCgroupDirOf("0::/\n", V2), null);
  // A v1 memory mount that shows only a sub-tree (its root is not "/").
  const nested = parseMountInfo("31 25 0:28 /kubepods /mem rw - cgroup cgroup rw,memory");
  assert.equal(memoryCgroupDirOf(PROC_CGROUP, nested), "/mem/c1");
  assert.equal(memoryCgroupDirOf("4:memory:/other\n", nested), null);
  assert.equal(memoryCgroupDirOf(PROC_CGROUP, []), null);
  assert.equal(memoryCgroupDirOf("garbage\n\n", HYBRID), null);
});

Deno.test("MemoryCgroups notes a count, refuses paths outside cgroup mounts, and counts since", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-memcg-" });
  try {
    const mountinfo = `28 24 0:25 / ${root} rw - cgroup2 cgroup2 rw`;
    let reads = 0;
    const cgroups = new MemoryCgroups(() => {
      reads++;
      return mountinfo;
    }, (pid) => {
      if (pid === 42) return "0::/c1\n";
      // This process, and a child that shares its cgroup: not a container's own.
      if (pid === Deno.pid || pid === 43) return "0::/self/reaperd\n";
      if (pid === 44) return "0::/self\n";
      return "0::/gone\n";
    });
    for (const dir of ["c1", "self/reaperd"]) {
      await Deno.mkdir(`${root}/${dir}`, { recursive: true });
      await Deno.writeTextFile(`${root}/${dir}/memory.events`, "oom 1\noom_kill 1\n");
    }
    await Deno.writeTextFile(`${root}/self/memory.events`, "oom 0\noom_kill 0\n");

    const mark = cgroups.markOf(42);
    assert.deepEqual(mark, { dir: `${root}/c1`, oomKills: 1 });
    assert.equal(cgroups.markAt(`${root}/c1`)?.oomKills, 1);
    assert.equal(cgroups.markOf(7), null, "a cgroup without a readable count");
    assert.equal(cgroups.markOf(0), null);
    assert.equal(cgroups.markOf(43), null, "reaperd's own cgroup");
    assert.equal(cgroups.markOf(44), null, "a cgroup above reaperd's own");
    assert.equal(cgroups.markAt("/etc"), null, "not under a cgroup mount");
    assert.equal(cgroups.markAt(`${root}/c1/../c1`), null, "not normalized");
    assert.equal(cgroups.markAt(root), null, "the root cgroup");
    assert.equal(reads, 1, "the mount table is read once");

    assert.equal(oomKillsSince(mark!), 0);
    await Deno.writeTextFile(`${root}/c1/memory.events`, "oom 3\noom_kill 3\n");
    assert.equal(oomKillsSince(mark!), 2);
    await Deno.remove(`${root}/c1`, { recursive: true });
    assert.equal(oomKillsSince(mark!), null, "the cgroup is gone: cannot tell");
    assert.equal(readOomKills(`${root}/c1`), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A fresh memory cgroup below this process's own, limited to `limit` bytes. */
function makeLimitedCgroup(limit: number): { dir: string; v1: boolean } {
  const text = Deno.readTextFileSync("/proc/self/cgroup");
  const own = memoryCgroupDirOf(
    text,
    parseMountInfo(Deno.readTextFileSync("/proc/self/mountinfo")),
  );
  const v1 = /^\d+:[^:]*\bmemory\b[^:]*:/m.test(text);
  // In the root cgroup (own === null) the child goes right under the hierarchy's mount.
  const parent = own ?? (v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup");
  const dir = `${parent}/reaperd-test-${crypto.randomUUID().slice(0, 8)}`;
  Deno.mkdirSync(dir);
  if (v1) {
    Deno.writeTextFileSync(`${dir}/memory.limit_in_bytes`, String(limit));
  } else {
    Deno.writeTextFileSync(`${dir}/memory.max`, String(limit));
    try {
      Deno.writeTextFileSync(`${dir}/memory.swap.max`, "0");
    } catch {
      // No swap accounting: no swap to fall back on either.
    }
  }
  return { dir, v1 };
}

needs("root", "memory-cgroup").test(
  "a process over its memory cgroup's limit is killed by the OOM killer, and the count says so",
  async () => {
    const { dir } = makeLimitedCgroup(8 * 1024 * 1024);
    try {
      const cgroups = new MemoryCgroups();
      const mark = cgroups.markAt(dir);
      assert.deepEqual(mark, { dir, oomKills: 0 });
      // The child moves itself into the cgroup, then eats memory until the kernel kills it.
      const hog = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${dir}/cgroup.procs && exec tail /dev/zero`],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const status = await hog.output();
      assert.equal(status.signal, "SIGKILL", new TextDecoder().decode(status.stderr));
      assert.equal(oomKillsSince(mark!), 1);
      // Another process of the same cgroup that is killed by hand leaves the count alone.
      const sleeper = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${dir}/cgroup.procs && exec sleep 30`],
        stdin: "null",
      }).spawn();
      for (let i = 0; i < 100 && cgroups.markOf(sleeper.pid)?.dir !== dir; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(cgroups.markOf(sleeper.pid)?.dir, dir);
      const again = cgroups.markOf(sleeper.pid)!;
      sleeper.kill("SIGKILL");
      assert.equal((await sleeper.status).signal, "SIGKILL");
      assert.equal(oomKillsSince(again), 0);
    } finally {
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(dir);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  },
);
