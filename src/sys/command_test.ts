import assert from "node:assert/strict";
import { HELPER_ENV, isSuccess, runCommand } from "./command.ts";
import * as libc from "./libc.ts";

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

Deno.test("runCommand gives a helper PATH and nothing else of the daemon's environment", async () => {
  Deno.env.set("REAPERD_SECRET_TEST", "leak");
  try {
    const r = await runCommand(["/usr/bin/env"], { timeoutMs: 5000 });
    assert.ok(isSuccess(r), r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), [`PATH=${HELPER_ENV.PATH}`]);
    const withExtra = await runCommand(["/usr/bin/env"], { timeoutMs: 5000, env: { A: "1" } });
    assert.deepEqual(withExtra.stdout.trim().split("\n").sort(), [
      "A=1",
      `PATH=${HELPER_ENV.PATH}`,
    ]);
  } finally {
    Deno.env.delete("REAPERD_SECRET_TEST");
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

Deno.test("runCommand reports the signal that ended a command by its name", async () => {
  const r = await runCommand(["/bin/sh", "-c", "kill -TERM $$"], { timeoutMs: 5000 });
  assert.equal(r.code, null);
  assert.equal(r.signal, "SIGTERM");
  assert.equal(r.timedOut, false);
});

Deno.test("runCommand starts a helper with default signals, nothing blocked, stdin empty", async () => {
  // The Deno runtime ignores SIGPIPE; a runtime started with it ignored would not die on a
  // closed pipe the way it was written to.
  const r = await runCommand(["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; cat"], {
    timeoutMs: 5000,
  });
  assert.equal(r.code, 0, r.stderr);
  const mask = (name: string) =>
    BigInt("0x" + (r.stdout.match(new RegExp(`${name}:\\s*(\\w+)`))?.[1]));
  assert.equal(mask("SigBlk"), 0n);
  // Signals 1-31; glibc keeps its two internal real-time signals (32, 33) ignored.
  assert.equal(mask("SigIgn") & 0x7fffffffn, 0n, r.stdout);
});

Deno.test("runCommand gives a helper stdin, stdout and stderr and no other descriptor", async () => {
  // A descriptor without close-on-exec, as a daemon may inherit from whoever started it.
  const inheritable = libc.open("/dev/null", libc.O.RDONLY);
  let r;
  try {
    r = await runCommand(["/bin/ls", "/proc/self/fd"], { timeoutMs: 5000 });
  } finally {
    libc.close(inheritable);
  }
  assert.equal(r.code, 0, r.stderr);
  // 0-2 are stdin, stdout and stderr; 3 is the directory ls itself is listing.
  assert.deepEqual(r.stdout.trim().split("\n").map(Number).sort(), [0, 1, 2, 3]);
});

Deno.test("runCommand runs many helpers at once and leaves no descriptor behind", async () => {
  const fdsBefore = [...Deno.readDirSync("/proc/self/fd")].length;
  const results = await Promise.all(
    Array.from(
      { length: 64 },
      (_, i) =>
        runCommand(["/bin/sh", "-c", `echo ${i}; echo e${i} >&2; exit ${i % 7}`], {
          timeoutMs: 10_000,
        }),
    ),
  );
  results.forEach((r, i) => {
    assert.equal(r.code, i % 7);
    assert.equal(r.stdout, `${i}\n`);
    assert.equal(r.stderr, `e${i}\n`);
  });
  assert.equal([...Deno.readDirSync("/proc/self/fd")].length, fdsBefore);
});

/** Runs `body` with the fd limit set so that only the next `free` descriptors can be opened. */
async function withFreeDescriptors<T>(free: number, body: () => Promise<T>): Promise<T> {
  // The listing's own directory descriptor shows in it, and is closed once it is read.
  const listing = `/proc/${Deno.pid}/fd`;
  const open = new Set(
    [...Deno.readDirSync(listing)].filter((e) => {
      try {
        return Deno.readLinkSync(`${listing}/${e.name}`) !== listing;
      } catch {
        return false;
      }
    }).map((e) => Number(e.name)),
  );
  let fd = -1;
  for (let found = 0; found < free; found++) {
    do fd++; while (open.has(fd));
  }
  const { soft, hard } = libc.getFdLimit();
  libc.setFdLimit(fd + 1, hard);
  try {
    return await body();
  } finally {
    libc.setFdLimit(soft, hard);
  }
}

Deno.test("runCommand still sees the exit, and still kills at the deadline, with no pidfd to spare", async () => {
  // Four descriptors: the two pipes, then the loop's epoll and eventfd take the places of the
  // write ends the child got, and nothing is left for pidfd_open.
  const ok = await withFreeDescriptors(4, () =>
    runCommand(["/bin/sh", "-c", "echo hi; exit 5"], {
      timeoutMs: 5000,
    }));
  assert.equal(ok.error, null);
  assert.equal(ok.code, 5);
  assert.equal(ok.stdout, "hi\n");
  const hung = await withFreeDescriptors(4, () =>
    runCommand(["/bin/sleep", "30"], {
      timeoutMs: 200,
    }));
  assert.equal(hung.timedOut, true);
  assert.equal(hung.signal, "SIGKILL");
  assert.ok(hung.durationMs < 5000, `${hung.durationMs}`);
});

Deno.test("runCommand keeps argv and envp alive while garbage collections run mid-start", async () => {
  const fixture = new URL("../../tests/fixtures/spawn_gc_stress.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--v8-flags=--expose-gc", fixture.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const report = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(report.wrong, 0, JSON.stringify(report.first));
});
