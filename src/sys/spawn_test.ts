import assert from "node:assert/strict";
import { Errno, SysError } from "./errno.ts";
import * as libc from "./libc.ts";
import { reapChild, spawnChild } from "./spawn.ts";

function readAll(fd: number): string {
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = libc.read(fd, buf);
    if (n === 0) return text;
    if (n !== null) text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

async function reap(pid: number) {
  for (;;) {
    const exit = reapChild(pid);
    if (exit !== null) return exit;
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("spawnChild passes argv, env and cwd and gives back the output pipes", async () => {
  const child = await spawnChild({
    argv: ["sh", "-c", 'echo "$1 $GREETING $(pwd)"; echo oops >&2; exit 4', "sh", "arg"],
    env: ["GREETING=hello", "PATH=/usr/bin:/bin"],
    cwd: "/tmp",
  });
  try {
    const exit = await reap(child.pid);
    assert.deepEqual(exit, { code: 4, signal: null });
    assert.equal(readAll(child.stdout), "arg hello /tmp\n");
    assert.equal(readAll(child.stderr), "oops\n");
  } finally {
    libc.close(child.stdout);
    libc.close(child.stderr);
  }
});

Deno.test("spawnChild throws ENOENT for a missing program and leaves no descriptor", async () => {
  const before = [...Deno.readDirSync("/proc/self/fd")].length;
  await assert.rejects(
    () => spawnChild({ argv: ["/nonexistent/runtime"], env: [] }),
    (e: unknown) => e instanceof SysError && e.errno === Errno.ENOENT,
  );
  await assert.rejects(
    () => spawnChild({ argv: ["/bin/true"], env: [], cwd: "/nonexistent/dir" }),
    (e: unknown) => e instanceof SysError && e.errno === Errno.ENOENT,
  );
  assert.equal([...Deno.readDirSync("/proc/self/fd")].length, before);
});

Deno.test("reapChild reports a signal death", async () => {
  const child = await spawnChild({ argv: ["/bin/sleep", "30"], env: [] });
  libc.kill(child.pid, 9);
  assert.deepEqual(await reap(child.pid), { code: null, signal: 9 });
  libc.close(child.stdout);
  libc.close(child.stderr);
});

Deno.test("spawnChild starts many children at once, each with its own argv", async () => {
  const children = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => spawnChild({ argv: ["/bin/echo", `child ${i}`], env: [] }),
    ),
  );
  for (const [i, child] of children.entries()) {
    assert.deepEqual(await reap(child.pid), { code: 0, signal: null });
    assert.equal(readAll(child.stdout), `child ${i}\n`);
    libc.close(child.stdout);
    libc.close(child.stderr);
  }
});
