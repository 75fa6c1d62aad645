import assert from "node:assert/strict";
import { needs } from "../../tests/support/needs.ts";
import { readProcStat } from "../sys/proc.ts";
import { type PathHelperOptions, PathHelperPool } from "./path_helper.ts";
import { PATH_HELPER_COMMAND } from "./path_helper_serve.ts";

const withFreezerV1 = needs("root", "freezer-v1");

function pidIn(detail: string): number {
  const m = /pid (\d+)/.exec(detail);
  assert.ok(m !== null, detail);
  return Number(m[1]);
}

Deno.test("PathHelperPool runs path ops in a helper process, one after another", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-helper-" });
  const pool = new PathHelperPool();
  try {
    for (let i = 0; i < 5; i++) await Deno.writeTextFile(`${tmp}/f${i}`, "x");
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => pool.run({ op: "remove", path: `${tmp}/f${i}` }, 20_000)),
    );
    assert.deepEqual(results.map((r) => r.ok), [true, true, true, true, true]);
    await assert.rejects(Deno.lstat(`${tmp}/f0`), Deno.errors.NotFound);
    const refused = await pool.run({ op: "remove", path: "not/absolute" }, 20_000);
    assert.equal(refused.ok, false);
    assert.match(refused.detail, /not absolute/);
  } finally {
    await pool.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a helper that does not answer in time is killed, and the next request gets another", async () => {
  const pool = new PathHelperPool({ argv: ["sh", "-c", "echo ready; exec sleep 600"] });
  try {
    const first = await pool.run({ op: "remove", path: "/nonexistent/a" }, 200);
    assert.equal(first.ok, false);
    assert.match(first.detail, /no answer within 200 ms; path helper pid \d+ killed$/);
    assert.equal(first.procState, undefined);
    assert.equal(readProcStat(pidIn(first.detail)), null, "the killed helper was reaped");
    const second = await pool.run({ op: "remove", path: "/nonexistent/a" }, 200);
    assert.notEqual(pidIn(second.detail), pidIn(first.detail));
    assert.deepEqual(pool.stuck(), []);
  } finally {
    await pool.close();
  }
});

Deno.test("a request that finds every helper busy waits no longer than one request may hold one", async () => {
  const pool = new PathHelperPool({
    argv: ["sh", "-c", "echo ready; exec sleep 600"],
    maxHelpers: 1,
    startTimeoutMs: 100,
  });
  try {
    const [first, second] = await Promise.all([
      pool.run({ op: "remove", path: "/nonexistent/a" }, 1_000),
      pool.run({ op: "remove", path: "/nonexistent/b" }, 100),
    ]);
    assert.match(first.detail, /no answer within 1000 ms; path helper pid \d+ killed$/);
    assert.equal(second.ok, false);
    assert.equal(second.code, "ETIMEDOUT");
    // 100 ms to start, 100 ms for the op, 300 ms for a kill: 500 ms, well before the first ends.
    assert.match(second.detail, /not tried: no path helper came free within 500 ms$/);
  } finally {
    await pool.close();
  }
});

Deno.test("a helper that ends mid-request, or cannot start, fails the op with the reason", async () => {
  const dies = new PathHelperPool({
    argv: ["sh", "-c", "echo ready; read line; echo 'out of luck' >&2; exit 3"],
  });
  const missing = new PathHelperPool({ argv: ["/nonexistent/helper"] });
  const mute = new PathHelperPool({ argv: ["sh", "-c", "exec sleep 600"], startTimeoutMs: 200 });
  try {
    const r = await dies.run({ op: "remove", path: "/x" }, 5_000);
    assert.equal(r.ok, false);
    assert.match(r.detail, /ended without an answer: out of luck/);
    const m = await missing.run({ op: "remove", path: "/x" }, 5_000);
    assert.match(m.detail, /cannot start the path helper/);
    const s = await mute.run({ op: "remove", path: "/x" }, 5_000);
    assert.match(s.detail, /no "ready" within 200 ms/);
    assert.equal(readProcStat(pidIn(s.detail)), null);
  } finally {
    await dies.close();
    await missing.close();
    await mute.close();
  }
});

Deno.test("reaperd itself serves as the path helper under its hidden command", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-helper-" });
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const pool = new PathHelperPool({
    argv: [Deno.execPath(), "run", "--allow-all", "--quiet", main, PATH_HELPER_COMMAND],
  });
  try {
    await Deno.writeTextFile(`${tmp}/f`, "x");
    const r = await pool.run({ op: "remove", path: `${tmp}/f` }, 30_000);
    assert.deepEqual(r, { ok: true, detail: `removed ${tmp}/f` });
  } finally {
    await pool.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * Runs `fn` with a pool whose helpers put themselves in a v1 freezer cgroup and freeze it, once
 * `readyFirst` after saying ready, else before: helpers that survive SIGKILL, as on a dead
 * filesystem. Thaws and reaps them afterwards.
 */
async function withFrozenHelpers(
  readyFirst: boolean,
  options: Omit<PathHelperOptions, "argv">,
  fn: (pool: PathHelperPool) => Promise<void>,
): Promise<void> {
  const cg = `/sys/fs/cgroup/freezer/reaperd-helper-test-${Deno.pid}-${crypto.randomUUID()}`;
  await Deno.mkdir(cg);
  const freeze = `echo FROZEN > ${cg}/freezer.state`;
  const pool = new PathHelperPool({
    ...options,
    argv: [
      "sh",
      "-c",
      `echo $$ > ${cg}/cgroup.procs; ` +
      (readyFirst ? `echo ready; ${freeze}; exec sleep 600` : `${freeze}; echo ready`),
    ],
  });
  try {
    await fn(pool);
  } finally {
    await Deno.writeTextFile(`${cg}/freezer.state`, "THAWED");
    const deadline = performance.now() + 5_000;
    while (pool.stuck().length > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await pool.close();
    await Deno.remove(cg);
  }
}

withFreezerV1.test("a request that waited for a free helper still honours the stuck cap", async () => {
  await withFrozenHelpers(true, { maxHelpers: 1, maxStuck: 1 }, async (pool) => {
    const [first, second] = await Promise.all([
      pool.run({ op: "remove", path: "/hung/a" }, 300),
      pool.run({ op: "remove", path: "/hung/b" }, 300),
    ]);
    assert.match(first.detail, /stuck in state . \(left behind\)$/);
    assert.match(second.detail, /not tried: 1 path helpers are stuck on hung filesystems/);
    assert.equal(pool.stuck().length, 1);
  });
});

withFreezerV1.test("a helper that hangs before its ready and will not die counts as stuck", async () => {
  await withFrozenHelpers(false, { startTimeoutMs: 300, maxStuck: 1 }, async (pool) => {
    const first = await pool.run({ op: "remove", path: "/hung/a" }, 5_000);
    assert.match(first.detail, /did not start: no "ready" within 300 ms/);
    assert.deepEqual(pool.stuck().map((s) => s.pid), [pidIn(first.detail)]);
    const second = await pool.run({ op: "remove", path: "/hung/b" }, 5_000);
    assert.match(second.detail, /not tried: 1 path helpers are stuck/);
  });
});

withFreezerV1.test("a path under or above one a stuck helper hangs on is not sent to another helper", async () => {
  await withFrozenHelpers(true, { maxStuck: 4 }, async (pool) => {
    const first = await pool.run({ op: "unmount", path: "/hung/c/rootfs" }, 300);
    assert.match(first.detail, /stuck in state . \(left behind\)$/);
    const under = await pool.run({ op: "remove", path: "/hung/c/rootfs/etc" }, 300);
    assert.match(under.detail, /still hung: .*no other helper is sent there/);
    const above = await pool.run({ op: "remove-state-dir", dir: "/hung/c", root: "/hung" }, 300);
    assert.match(above.detail, /still hung: .*no other helper is sent there/);
    assert.equal(pool.stuck().length, 1);
  });
});

/** Pids of this process's children that are still there (running or not yet reaped). */
function children(): number[] {
  const pids: number[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const text = Deno.readTextFileSync(`/proc/self/task/${task.name}/children`).trim();
    if (text !== "") pids.push(...text.split(/\s+/).map(Number));
  }
  return pids.sort();
}

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("a helper that cannot take its first request is ended, its pipes closed", async () => {
  // It says ready with its stdin already closed: the request cannot be written (EPIPE).
  const pool = new PathHelperPool({ argv: ["sh", "-c", "exec 0<&-; echo ready; exec sleep 600"] });
  try {
    const before = { children: children(), fds: openFds() };
    const r = await pool.run({ op: "remove", path: "/x" }, 5_000);
    assert.equal(r.ok, false);
    assert.equal(r.code, "EIO");
    assert.match(r.detail, /write/);
    assert.deepEqual(children(), before.children, "the helper is killed and reaped");
    assert.equal(openFds(), before.fds, "no pipe of the helper is left open");
  } finally {
    await pool.close();
  }
});

withFreezerV1.test("a helper that ends its output mid-request and will not die counts as stuck", async () => {
  const cg = `/sys/fs/cgroup/freezer/reaperd-helper-test-${Deno.pid}-${crypto.randomUUID()}`;
  await Deno.mkdir(cg);
  // The helper closes its stdout; a child of it, moved out of the cgroup, freezes it and then
  // lets go of the last copy of that stdout: the end of its output comes from a helper in D.
  const freezer =
    `echo $$ > /sys/fs/cgroup/freezer/cgroup.procs; echo FROZEN > ${cg}/freezer.state; ` +
    `until grep -q FROZEN ${cg}/freezer.state; do sleep 0.01; done`;
  const pool = new PathHelperPool({
    argv: [
      "sh",
      "-c",
      `echo $$ > ${cg}/cgroup.procs; echo ready; read line; ` +
      `sh -c '${freezer}' & exec 1>&- 2>&-; exec sleep 600`,
    ],
  });
  try {
    const r = await pool.run({ op: "remove", path: "/hung/d" }, 5_000);
    assert.equal(r.ok, false);
    assert.match(r.detail, /ended without an answer/);
    assert.deepEqual(pool.stuck().map((s) => s.pid), [pidIn(r.detail)]);
    const again = await pool.run({ op: "remove", path: "/hung/d" }, 5_000);
    assert.match(again.detail, /still hung: .*no other helper is sent there/);
  } finally {
    await Deno.writeTextFile(`${cg}/freezer.state`, "THAWED");
    const deadline = performance.now() + 5_000;
    while (pool.stuck().length > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await pool.close();
    await Deno.remove(cg);
  }
});
