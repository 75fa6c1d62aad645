/**
 * The `reaperd` command line against the real daemon, run as a user runs it: a separate
 * process per command, real FIFOs and test shims, the daemon's own answers.
 */
import assert from "node:assert/strict";
import { fakeRuntime, type RunningShim, startShim, stopShim } from "./fixtures/shim.ts";
import { type CliResult, TestDaemon } from "./support/daemon.ts";
import { needs } from "./support/needs.ts";
import { until } from "./support/poll.ts";

/** The test shim is built from C. */
const withCc = needs("cc");
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A container that runs until the file `go` appears in its state dir, then exits `code`. */
function untilGo(code: number): string[] {
  return ["sh", "-c", `while [ ! -e go ]; do sleep 0.02; done; exit ${code}`];
}

async function go(d: TestDaemon, runtime: string, id: string): Promise<void> {
  await Deno.writeTextFile(`${d.stateRoot}/${runtime}/${id}/go`, "");
}

/** create-fifo, a shim, then `reaperd monitor`: what an engine does, through the CLI. */
async function monitored(
  d: TestDaemon,
  id: string,
  code: number,
  extra: string[] = [],
  runtime = "fake",
  noWrite = false,
): Promise<{ shim: RunningShim; monitor: CliResult }> {
  const stateDir = `${d.stateRoot}/${runtime}/${id}`;
  const created = await d.cli("create-fifo", stateDir);
  assert.equal(created.code, 0, created.stderr);
  const shim = await startShim({ stateDir, mode: { kind: "exec", argv: untilGo(code) }, noWrite });
  const flags = {
    "--runtime": runtime,
    "--state-dir": stateDir,
    "--pid": String(shim.container.pid),
    "--ppid": String(shim.shim.pid),
  };
  const monitor = await d.cli("monitor", id, ...Object.entries(flags).flat(), ...extra);
  assert.equal(monitor.code, 0, monitor.stderr);
  return { shim, monitor };
}

async function stateOf(d: TestDaemon, id: string): Promise<string | null> {
  const res = await d.api("GET", `/v1/containers/${id}`);
  return res.status === 200 ? (res.body as { state: string }).state : null;
}

function stopped(d: TestDaemon, id: string, timeoutMs?: number): Promise<true> {
  return until(
    `${id} stopped`,
    async () => (await stateOf(d, id)) === "stopped" || null,
    timeoutMs,
  );
}

/** NDJSON lines as objects. */
function ndjson(text: string): Record<string, unknown>[] {
  return text.trimEnd().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

withCc.test("reaperd CLI: monitor, inspect, ps --filter/--quiet, wait and rm against the daemon", async () => {
  const d = await TestDaemon.start();
  const shims: RunningShim[] = [];
  try {
    const c1 = await monitored(d, "c1", 3, ["--name", "web"]);
    shims.push(c1.shim);
    assert.equal(
      c1.monitor.stdout,
      `monitoring c1 (pid ${c1.shim.container.pid}, shim ${c1.shim.shim.pid}, runtime fake)\n`,
    );
    const record = JSON.parse((await d.cli("inspect", "c1", "--json")).stdout);
    for (
      const key of ["id", "name", "runtime", "state", "pid", "ppid", "startTime", "pStartTime"]
    ) {
      assert.ok(key in record, key);
    }
    assert.deepEqual([record.name, record.state, record.exit], ["web", "running", null]);
    const human = await d.cli("inspect", "c1");
    assert.match(human.stdout, /^id: +c1$/m);
    assert.match(human.stdout, /^state: +running$/m);

    const c2 = await monitored(d, "c2", 137);
    shims.push(c2.shim);
    await go(d, "fake", "c2");
    await stopped(d, "c2");
    const ps = await d.cli("ps");
    const lines = ps.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID +NAME +RUNTIME +STATE +PID +PPID +EXIT +UPDATED$/);
    assert.match(lines[1]!, /^c1 +web +fake +running +\d+ +\d+ +- +/);
    assert.match(lines[2]!, /^c2 +c2 +fake +stopped +\d+ +\d+ +137 \(SIGKILL\) +/);
    const col = lines[0]!.indexOf("STATE");
    assert.equal(lines[1]!.indexOf("running"), col);
    assert.equal(lines[2]!.indexOf("stopped"), col);

    // ps --filter and --quiet: ids only, for scripts.
    assert.deepEqual(await d.cli("ps", "--filter", "state=running", "--quiet"), {
      code: 0,
      stdout: "c1\n",
      stderr: "",
    });
    assert.equal((await d.cli("ps", "--filter", "state=stopped", "-q")).stdout, "c2\n");
    const both = await d.cli("ps", "--filter", "state=running", "--filter", "state=stopped", "-q");
    assert.equal(both.stdout, "c1\nc2\n");
    assert.equal((await d.cli("ps", "--filter", "state=running,runtime=runc", "-q")).stdout, "");
    const filtered = JSON.parse((await d.cli("ps", "--filter", "state=stopped", "--json")).stdout);
    assert.deepEqual(filtered.map((r: { id: string }) => r.id), ["c2"]);
    const bad = await d.cli("ps", "--filter", "state=dead");
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^reaperd: .*state must be one of running, stopping, gc, stopped\.\n$/,
    );

    // rm: refused while the container runs, done for a stopped one.
    const refused = await d.cli("rm", "c1");
    assert.deepEqual(refused, {
      code: 1,
      stdout: "",
      stderr: "reaperd: container c1 is running: only a stopped one can go\n",
    });
    assert.deepEqual(await d.cli("rm", "c2"), { code: 0, stdout: "c2\n", stderr: "" });
    assert.equal(await stateOf(d, "c2"), null);
    assert.equal((await d.cli("ps", "-q")).stdout, "c1\n");
    assert.deepEqual(await d.cli("rm", "c2"), {
      code: 1,
      stdout: "",
      stderr: "reaperd: no such container: c2\n",
    });

    // wait: a timeout, then the code, then the code again at once.
    const timedOut = await d.cli("wait", "c1", "--timeout", "0.05");
    assert.equal(timedOut.code, 124);
    assert.equal(timedOut.stdout, "");
    assert.match(timedOut.stderr, /timed out after 0\.05s waiting for c1/);
    const waiting = d.cli("wait", "c1");
    await go(d, "fake", "c1");
    assert.deepEqual(await waiting, { code: 3, stdout: "3\n", stderr: "" });
    assert.deepEqual(await d.cli("wait", "c1", "--timeout", "5"), {
      code: 3,
      stdout: "3\n",
      stderr: "",
    });

    // A shim that dies without writing the status: the exit is known, its code is not.
    const c3 = await monitored(d, "c3", 0, [], "fake", true);
    shims.push(c3.shim);
    await go(d, "fake", "c3");
    const unknown = await d.cli("wait", "c3");
    assert.equal(unknown.code, 126);
    assert.equal(unknown.stdout, "");
    assert.match(unknown.stderr, /^reaperd: c3 exited but its status is unknown: /);

    const none = await d.cli("wait", "nope");
    assert.deepEqual(none, { code: 125, stdout: "", stderr: "reaperd: no such container: nope\n" });
    const missing = await d.cli("inspect", "nope");
    assert.deepEqual(missing, {
      code: 1,
      stdout: "",
      stderr: "reaperd: no such container: nope\n",
    });
    const badRuntime = await d.cli(
      "monitor",
      "c9",
      "--runtime",
      "zz",
      "--state-dir",
      `${d.stateRoot}/zz/c9`,
      "--pid",
      String(Deno.pid),
      "--ppid",
      "0",
    );
    assert.deepEqual(badRuntime, {
      code: 1,
      stdout: "",
      stderr: 'reaperd: unknown runtime "zz" (configured: crun, fake, runc)\n',
    });
  } finally {
    for (const shim of shims) await stopShim(shim);
    await d.dispose();
  }
});

Deno.test("reaperd CLI: gc add, ls, status and retry; rm refuses a container in GC", async () => {
  const fakeDir = await Deno.makeTempDir({ prefix: "reaperd-fake-" });
  // A backoff far longer than the test: only `gc retry` can bring the next attempt in time.
  const d = await TestDaemon.start({
    runtimes: { flaky: { path: await fakeRuntime(), args: ["--fake-dir", fakeDir] } },
    gc: { backoffBaseMs: 120_000, backoffMaxMs: 120_000 },
  });
  try {
    await Deno.writeTextFile(`${fakeDir}/fail-delete`, "1000");
    // The runtime's own root: cleanup calls the runtime's delete only when it exists.
    await Deno.mkdir(`${d.stateRoot}/flaky/g1/flaky`, { recursive: true });
    const add = await d.cli(
      "gc",
      "add",
      "g1",
      "--runtime",
      "flaky",
      "--pid",
      "4242",
      "--ppid",
      "0",
    );
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /^g1: in GC since just now, 0 attempts, next now\n$/);
    const failed = await until("first attempt failed", async () => {
      const r = await d.cli("gc", "status", "g1", "--json");
      const view = r.code === 0 ? JSON.parse(r.stdout) : null;
      return view?.entry.attempts === 1 ? view : null;
    });
    assert.equal(failed.entry.lastStep, "runtime-delete");
    assert.ok(failed.entry.nextAttemptAt - Date.now() > 30_000, "the next attempt is far off");

    const ls = await d.cli("gc", "ls");
    assert.match(
      ls.stdout,
      /^ID +RUNTIME +ATTEMPTS +NEXT +PROC +LAST STEP +LAST ERROR\ng1 +flaky +1 +/,
    );
    assert.equal(JSON.parse((await d.cli("gc", "ls", "--json")).stdout)[0].entry.id, "g1");
    assert.equal((await d.cli("gc", "status", "g1")).code, 0);
    assert.deepEqual(await d.cli("gc", "status", "other"), {
      code: 1,
      stdout: "other: not in GC\n",
      stderr: "",
    });
    assert.equal((await d.cli("gc", "status", "other", "--json")).stdout, "null\n");
    assert.equal(
      (await d.cli("gc", "add", "g2", "--runtime", "flaky", "--pid", "0", "--ppid", "1")).code,
      2,
    );

    const refused = await d.cli("rm", "g1");
    assert.deepEqual(refused, {
      code: 1,
      stdout: "",
      stderr: "reaperd: container g1 is in GC: only a stopped one can go\n",
    });

    // The cause is fixed: retry now rather than in two minutes.
    await Deno.remove(`${fakeDir}/fail-delete`);
    const retried = await d.cli("gc", "retry", "g1");
    assert.deepEqual(retried, { code: 0, stdout: "g1: next attempt now\n", stderr: "" });
    await stopped(d, "g1", 10_000);
    assert.deepEqual(await d.cli("gc", "retry", "g1"), {
      code: 1,
      stdout: "",
      stderr: "reaperd: container g1 is not in GC\n",
    });

    // events --filter: by container and by kind, and --limit counts what is printed.
    const mine = ndjson((await d.cli("events", "--filter", "id=g1", "--json")).stdout);
    assert.deepEqual(mine.map((e) => e.kind), ["gc", "gc-attempt", "gc-done"]);
    const kinds = await d.cli("events", "--filter", "kind=gc-attempt,kind=gc-done", "--json");
    assert.deepEqual(ndjson(kinds.stdout).map((e) => [e.kind, e.id]), [
      ["gc-attempt", "g1"],
      ["gc-done", "g1"],
    ]);
    const one = await d.cli("events", "--filter", "id=g1", "--limit", "1", "--json");
    assert.deepEqual(ndjson(one.stdout).map((e) => e.kind), ["gc"]);
    assert.equal((await d.cli("events", "--filter", "id=nobody")).stdout, "");
    const badKind = await d.cli("events", "--filter", "kind=died");
    assert.equal(badKind.code, 2);
    assert.match(
      badKind.stderr,
      /kind must be one of monitor, exit, exit-lost, stopped, gc, gc-attempt/,
    );

    assert.deepEqual(await d.cli("rm", "g1"), { code: 0, stdout: "g1\n", stderr: "" });
  } finally {
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});

withCc.test("reaperd CLI: events as lines, NDJSON and --follow; restore is logged with its counts", async () => {
  const d = await TestDaemon.start();
  const shims: RunningShim[] = [];
  try {
    const first = ndjson((await d.cli("events", "--json")).stdout);
    assert.deepEqual(first.map((e) => [e.kind, e.id, e.state, e.detail]), [
      ["restore", null, null, { monitored: 0, exited: 0, resumed: 0, adopted: 0 }],
    ]);
    const c1 = await monitored(d, "c1", 0);
    shims.push(c1.shim);
    const human = await d.cli("events", "--since", "1");
    assert.match(
      human.stdout,
      /^ +2 +\d{4}-\d\d-\d\dT[^ ]+ +monitor +running +c1 +\{"pid":\d+,"startTime":\d+,/,
    );
    assert.equal(human.stdout.trimEnd().split("\n").length, 1);
    assert.match((await d.cli("events", "--limit", "1")).stdout, /^ +1 +\S+ +restore +- +- {2}\{/);

    // --follow waits for what comes next.
    const following = d.cli(
      "events",
      "--follow",
      "--filter",
      "kind=exit",
      "--limit",
      "1",
      "--json",
    );
    await new Promise((r) => setTimeout(r, 500));
    await go(d, "fake", "c1");
    const followed = await following;
    assert.equal(followed.code, 0, followed.stderr);
    const [exit] = ndjson(followed.stdout);
    assert.deepEqual([exit?.kind, exit?.id, exit?.state], ["exit", "c1", "stopping"]);
    await stopped(d, "c1");

    // One running and one stopped container across a restart: the restore event counts them.
    const c2 = await monitored(d, "c2", 0);
    shims.push(c2.shim);
    await d.stop();
    await d.restart();
    const restores = ndjson((await d.cli("events", "--filter", "kind=restore", "--json")).stdout);
    assert.deepEqual(restores.map((e) => e.detail), [
      { monitored: 0, exited: 0, resumed: 0, adopted: 0 },
      { monitored: 1, exited: 0, resumed: 0, adopted: 0 },
    ]);

    const health = await d.cli("health");
    assert.equal(health.code, 0);
    assert.match(health.stdout, /^status: +ok$/m);
    assert.equal(JSON.parse((await d.cli("health", "--json")).stdout).monitored, 1);
    assert.match((await d.cli("metrics")).stdout, /^reaperd_monitored_containers 1$/m);
  } finally {
    for (const shim of shims) await stopShim(shim);
    await d.dispose();
  }
});

/** Runs a shell command line as a user types it, in `cwd`, talking to `d`. */
async function shell(d: TestDaemon, cwd: string, line: string): Promise<CliResult> {
  const out = await new Deno.Command("bash", {
    args: ["-c", line],
    cwd,
    // A user's shell: the INIT_CWD an outer `deno task test` set is not the caller's directory.
    clearEnv: true,
    env: {
      ...withoutInitCwd(Deno.env.toObject()),
      REAPERD_SOCKET: d.socket,
      PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:/usr/bin:/bin`,
    },
    stdin: "null",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

function withoutInitCwd(env: Record<string, string>): Record<string, string> {
  const { INIT_CWD: _, ...rest } = env;
  return rest;
}

Deno.test("reaperd CLI: paths on the command line are the caller's, through deno task too", async () => {
  const d = await TestDaemon.start();
  try {
    // The README's way to have `reaperd` in a checkout: an alias to the deno task.
    const alias = `shopt -s expand_aliases; alias reaperd='deno task -q --cwd ${REPO} reaperd'`;
    const viaTask = await shell(d, d.stateRoot, `${alias}\nreaperd create-fifo fake/rel-1`);
    assert.deepEqual(viaTask, {
      code: 0,
      stdout: `${d.stateRoot}/fake/rel-1/exit_fifo\n`,
      stderr: "",
    });
    const direct = await shell(
      d,
      `${d.stateRoot}/fake`,
      `deno run -A ${REPO}/main.ts create-fifo ./rel-2 --json`,
    );
    assert.deepEqual(JSON.parse(direct.stdout), { fifo: `${d.stateRoot}/fake/rel-2/exit_fifo` });
    assert.equal((await Deno.lstat(`${d.stateRoot}/fake/rel-1/exit_fifo`)).isFifo, true);
  } finally {
    await d.dispose();
  }
});
