import assert from "node:assert/strict";
import {
  assertValidPid,
  identify,
  isAlive,
  isValidPid,
  parseProcStat,
  readProcStat,
  readProcText,
} from "./proc.ts";
import { SysError } from "./errno.ts";

Deno.test("parseProcStat() reads field 22 after the last ')' even when comm holds ') ('", () => {
  const line = "4242 (evil) S 1 (x) R 7 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98072004 0";
  // Everything after the LAST ')' counts: "R 7 …" makes state R, ppid 7.
  const s = parseProcStat(line)!;
  assert.equal(s.comm, "evil) S 1 (x");
  assert.equal(s.state, "R");
  assert.equal(s.ppid, 7);
  assert.equal(s.startTime, 98072004);
});

Deno.test("parseProcStat() rejects what is not a stat line", () => {
  assert.equal(parseProcStat(""), null);
  assert.equal(parseProcStat("12 no parens"), null);
  assert.equal(parseProcStat("0 (x) S 1"), null);
  assert.equal(parseProcStat("-3 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0"), null);
});

Deno.test("readProcStat() of this process matches its pid and parent", () => {
  const s = readProcStat(Deno.pid)!;
  assert.equal(s.pid, Deno.pid);
  assert.equal(s.ppid, Deno.ppid);
  assert.ok(s.startTime > 0);
});

Deno.test("isAlive() needs the start time to match: a reused pid is not alive", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const id = identify(child.pid)!;
    assert.ok(isAlive(id));
    assert.equal(isAlive({ pid: id.pid, startTime: id.startTime + 1 }), false);
    assert.equal(isAlive({ pid: id.pid, startTime: 0 }), false);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("isAlive() counts a zombie as alive", async () => {
  // sh forks `sleep 0` and then sleeps itself without waiting, leaving a zombie child.
  const parent = new Deno.Command("sh", {
    args: ["-c", "sleep 0 & echo $!; exec sleep 30"],
    stdout: "piped",
  }).spawn();
  try {
    const reader = parent.stdout.getReader();
    const pid = Number(new TextDecoder().decode((await reader.read()).value).trim());
    reader.releaseLock();
    let stat = readProcStat(pid);
    for (let i = 0; i < 50 && stat?.state !== "Z"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      stat = readProcStat(pid);
    }
    assert.equal(stat?.state, "Z");
    assert.ok(isAlive({ pid, startTime: stat!.startTime }));
  } finally {
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel();
  }
});

Deno.test("pid 0, -1 and -5 are rejected everywhere", () => {
  for (const pid of [0, -1, -5, 1.5, NaN, 2 ** 40]) {
    assert.equal(isValidPid(pid), false, `${pid}`);
    assert.throws(() => assertValidPid(pid), RangeError);
    assert.equal(isAlive({ pid, startTime: 0 }), false);
    assert.equal(readProcStat(pid), null);
    assert.equal(identify(pid), null);
  }
});

Deno.test("readProcStat() fails loudly without the permission to read /proc", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-perm-" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { readProcStat } from "${new URL("./proc.ts", import.meta.url).href}";
       try { readProcStat(Deno.pid); Deno.exit(0); } catch (e) {
         Deno.exit(e instanceof Deno.errors.NotCapable ? 3 : 4); }`,
    );
    // --allow-read alone is what a daemon started with fine-grained flags would have.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--allow-read", script],
    }).output();
    assert.equal(out.code, 3, new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readProcText() reads a live process's file, says null for a gone one, throws on the rest", async () => {
  const path = `/proc/${Deno.pid}/cgroup`;
  assert.equal(readProcText(path), Deno.readTextFileSync(path));
  assert.equal(readProcStat(Deno.pid)?.pid, Deno.pid);
  const child = new Deno.Command("true").spawn();
  await child.status;
  // Reaped: the pid is free, and nothing has it yet (pids are not reused at once).
  assert.equal(readProcText(`/proc/${child.pid}/stat`), null);
  assert.equal(readProcStat(child.pid), null);
  assert.equal(readProcText("/proc/self/no-such-file"), null);
  assert.throws(() => readProcText("/proc/self"), SysError);
});
