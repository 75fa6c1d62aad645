import assert from "node:assert/strict";
import { isSuccess, runCommand } from "./command.ts";

Deno.test("runCommand captures stdout, stderr and the exit code", async () => {
  const r = await runCommand(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], {
    timeoutMs: 5000,
  });
  assert.equal(r.code, 3);
  assert.equal(r.signal, null);
  assert.equal(r.stdout, "out\n");
  assert.equal(r.stderr, "err\n");
  assert.equal(r.timedOut, false);
  assert.equal(r.notFound, false);
  assert.equal(r.error, null);
  assert.equal(isSuccess(r), false);
});

Deno.test("runCommand passes env and cwd", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCommand(["/bin/sh", "-c", 'echo "$REAPERD_X $(pwd)"'], {
      timeoutMs: 5000,
      env: { REAPERD_X: "hello" },
      cwd: dir,
    });
    assert.ok(isSuccess(r), r.stderr);
    assert.equal(r.stdout, `hello ${await Deno.realPath(dir)}\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runCommand SIGKILLs a command past its timeout and says so", async () => {
  const r = await runCommand(["/bin/sh", "-c", "echo started; exec sleep 30"], {
    timeoutMs: 300,
  });
  assert.equal(r.timedOut, true);
  assert.equal(r.code, null);
  assert.equal(r.signal, "SIGKILL");
  assert.equal(r.stdout, "started\n");
  assert.ok(r.durationMs < 5000, `${r.durationMs}`);
});

Deno.test("runCommand does not wait for a grandchild that keeps the pipes open", async () => {
  // The shell is killed, its background sleep is not and still holds stdout; the result must
  // come back anyway. The sleep is short so that nothing outlives the test for long.
  const r = await runCommand(["/bin/sh", "-c", "sleep 3 & wait"], { timeoutMs: 200 });
  assert.equal(r.timedOut, true);
  assert.ok(r.durationMs < 2500, `${r.durationMs}`);
});

Deno.test("runCommand reports a missing binary as not found, without throwing", async () => {
  const r = await runCommand(["/nonexistent/reaperd-no-such-runtime", "kill"], {
    timeoutMs: 1000,
  });
  assert.equal(r.notFound, true);
  assert.equal(r.code, null);
  assert.ok(
    (r.error ?? "").includes("/nonexistent/reaperd-no-such-runtime: not found"),
    r.error ?? "",
  );
});

Deno.test("runCommand tells a missing working directory from a missing binary", async () => {
  const r = await runCommand(["/bin/true"], { timeoutMs: 1000, cwd: "/nonexistent/dir" });
  assert.equal(r.notFound, false);
  assert.ok((r.error ?? "").includes("working directory"), r.error ?? "");
});

Deno.test("runCommand reports a non-executable file and an empty argv", async () => {
  const file = await Deno.makeTempFile();
  try {
    const r = await runCommand([file], { timeoutMs: 1000 });
    assert.ok((r.error ?? "").includes("permission denied"), r.error ?? "");
    assert.equal((await runCommand([], { timeoutMs: 1000 })).error, "empty command line");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("runCommand keeps only the tail of a large output", async () => {
  const r = await runCommand(["/bin/sh", "-c", "seq 1 100000; echo END"], {
    timeoutMs: 5000,
    maxOutputBytes: 100,
  });
  assert.equal(r.code, 0);
  assert.ok(r.stdout.endsWith("END\n"));
  assert.ok(r.stdout.length <= 100, `${r.stdout.length}`);
});
