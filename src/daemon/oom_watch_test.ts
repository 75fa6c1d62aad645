import assert from "node:assert/strict";
import { MemoryCgroups } from "../sys/memory_cgroup.ts";
import type { ContainerRecord, ExitStatus } from "../types.ts";
import { OomWatch } from "./oom_watch.ts";

const KILLED: ExitStatus = {
  code: 137,
  signal: 9,
  known: true,
  reason: "killed by signal 9 (SIGKILL)",
  at: 1,
};

function record(id: string, dir: string | null, pid = 10, startTime = 100): ContainerRecord {
  return {
    id,
    name: id,
    runtime: "runc",
    stateDir: `/run/isulad/runc/${id}`,
    mounts: [],
    paths: [],
    pid,
    startTime,
    ppid: 0,
    pStartTime: 0,
    ...(dir === null ? {} : { memoryCgroup: { dir, oomKills: 1 } }),
    state: "running",
    exit: null,
    createdAt: 0,
    updatedAt: 0,
  };
}

Deno.test("OomWatch.judge: a count above the mark is an OOM kill; equal is not; gone cannot tell", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-oom-" });
  try {
    const cgroups = new MemoryCgroups(() => `28 24 0:25 / ${root} rw - cgroup2 cgroup2 rw`);
    const watch = new OomWatch(cgroups);
    const events = (dir: string, n: number) =>
      Deno.writeTextFileSync(`${root}/${dir}/memory.events`, `oom ${n}\noom_kill ${n}\n`);
    for (const dir of ["a", "b"]) await Deno.mkdir(`${root}/${dir}`);
    events("a", 1);
    events("b", 1);
    assert.deepEqual(watch.markFor(0, `${root}/a`), { dir: `${root}/a`, oomKills: 1 });
    // Gone before it was monitored: every kill its cgroup counted may be what ended it.
    assert.deepEqual(watch.markFor(0, `${root}/a`, true), { dir: `${root}/a`, oomKills: 0 });
    assert.equal(watch.markFor(0, `${root}/missing`, true), null);
    watch.watch(record("a", `${root}/a`));
    watch.watch(record("b", `${root}/b`));
    watch.watch(record("none", null));
    assert.equal(watch.size, 2);

    assert.equal(watch.judge("a", 10, 100, KILLED).oomKilled, false);
    events("a", 3);
    const oom = watch.judge("a", 10, 100, KILLED);
    assert.equal(oom.oomKilled, true);
    assert.equal(
      oom.reason,
      "killed by signal 9 (SIGKILL); out of memory: the OOM killer of its memory cgroup " +
        "killed 2 processes",
    );
    assert.deepEqual({ ...oom, oomKilled: undefined, reason: "" }, {
      ...KILLED,
      oomKilled: undefined,
      reason: "",
    });
    // Another run of the same id (pid or start time differ) is not judged by this mark.
    assert.deepEqual(watch.judge("a", 11, 100, KILLED), KILLED);
    assert.deepEqual(watch.judge("a", 10, 101, KILLED), KILLED);
    assert.deepEqual(watch.judge("none", 10, 100, KILLED), KILLED);
    await Deno.remove(`${root}/b`, { recursive: true });
    assert.deepEqual(watch.judge("b", 10, 100, KILLED), KILLED, "cgroup gone: no claim");

    watch.forget("a");
    assert.deepEqual(watch.judge("a", 10, 100, KILLED), KILLED);
    watch.watch(record("b", null));
    assert.equal(watch.size, 0, "a record without a mark replaces the old one");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
