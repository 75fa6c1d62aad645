import assert from "node:assert/strict";
import type { Config, ConfigEnvironment } from "../config.ts";
import { FakeApi } from "../daemon/_fake_api.ts";
import { startHttpServer } from "../daemon/http.ts";
import { Exit, WaitExit } from "./exit_codes.ts";
import { MemoryOutput } from "./output.ts";
import { type CliDeps, runCli } from "./program.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function envWith(vars: Record<string, string>, uid = 0): ConfigEnvironment {
  return { uid, getEnv: (n) => vars[n], lookPath: () => null };
}

async function cli(args: string[], deps: Partial<CliDeps> = {}): Promise<Run> {
  const output = new MemoryOutput();
  const code = await runCli(args, { env: envWith({}), cwd: () => "/work", ...deps, output });
  return { code, stdout: output.stdout, stderr: output.stderr };
}

/** Runs `fn` with a fake daemon on a temp socket, and a `run` that points the CLI at it. */
async function withDaemon(
  fn: (api: FakeApi, run: (...args: string[]) => Promise<Run>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const api = new FakeApi();
  const server = await startHttpServer(api, { path: `${dir}/reaperd.sock` });
  const env = envWith({ REAPERD_SOCKET: server.path });
  try {
    await fn(api, (...args) => cli(args, { env }));
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const MONITOR = [
  "monitor",
  "c1",
  "--runtime",
  "runc",
  "--state-dir",
  "/var/run/isulad/runc/c1",
  "--pid",
  "4242",
  "--ppid",
  "4241",
];

Deno.test("--help shows examples and the exit statuses, and exits 0", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:/);
  assert.match(r.stdout, /Exit status:/);
  assert.match(r.stdout, /124 +wait --timeout passed/);
  const wait = await cli(["wait", "--help"]);
  assert.equal(wait.code, 0);
  assert.match(wait.stdout, /0-255 +the container's exit code/);
  const gcStatus = await cli(["gc", "status", "--help"]);
  assert.match(gcStatus.stdout, /exit 0 when it is, 1 when it is not/);
});

Deno.test("bad flags and arguments give one line on stderr and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["ps", "--jsn"], /^reaperd: unknown option '--jsn' \(Did you mean --json\?\)\n$/],
    [["bogus"], /^reaperd: unknown command 'bogus'/],
    [["monitor", "c1", "--runtime", "runc"], /required option '--state-dir <dir>' not specified/],
    [
      [...MONITOR.slice(0, 6), "--pid", "-1", "--ppid", "1"],
      /'--pid <pid>' argument '-1' is invalid/,
    ],
    [[...MONITOR.slice(0, 6), "--pid", "0", "--ppid", "1"], /argument '0' is invalid/],
    [[...MONITOR.slice(0, 6), "--pid", "1.5", "--ppid", "1"], /argument '1\.5' is invalid/],
    [[...MONITOR.slice(0, 6), "--pid", "12", "--ppid", "-3"], /'--ppid <pid>' argument '-3'/],
    [["wait", "c1", "--timeout", "soon"], /'-t, --timeout <seconds>' argument 'soon' is invalid/],
    [["inspect"], /missing required argument 'id'/],
    [["inspect", "a", "b"], /too many arguments/],
    [["events", "--since", "-1"], /--since <seq>' argument '-1' is invalid/],
    [["serve", "--log-level", "loud"], /choose one of trace, debug/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.equal(r.code, Exit.USAGE, args.join(" "));
    assert.equal(r.stdout, "", args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, `one line: ${r.stderr}`);
  }
});

Deno.test("a daemon that is not running gets the plain message and exit 3 (wait: 125)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const socket = `${dir}/nobody.sock`;
    const r = await cli(["ps", "--socket", socket]);
    assert.equal(r.code, Exit.UNREACHABLE);
    assert.equal(
      r.stderr,
      `reaperd: cannot reach the daemon at ${socket}: is it running? (start it with: reaperd serve)\n`,
    );
    const viaEnv = await cli(["health"], { env: envWith({ REAPERD_SOCKET: socket }) });
    assert.equal(viaEnv.code, Exit.UNREACHABLE);
    assert.match(viaEnv.stderr, new RegExp(`at ${socket}: is it running\\?`));
    const w = await cli(["wait", "c1", "--socket", socket]);
    assert.equal(w.code, WaitExit.ERROR);
    const dflt = await cli(["ps"], {
      env: envWith({ XDG_RUNTIME_DIR: dir, HOME: dir }, 1000),
    });
    assert.match(dflt.stderr, new RegExp(`at ${dir}/reaperd/reaperd\\.sock:`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("create-fifo prints the FIFO path; relative dirs are taken from the cwd", async () => {
  await withDaemon(async (_api, run) => {
    const r = await run("create-fifo", "/var/run/isulad/runc/c1");
    assert.deepEqual(r, { code: 0, stdout: "/var/run/isulad/runc/c1/exit_fifo\n", stderr: "" });
    const rel = await run("create-fifo", "state/c2");
    assert.equal(rel.stdout, "/work/state/c2/exit_fifo\n");
    const j = await run("create-fifo", "/x/c3", "--json");
    assert.deepEqual(JSON.parse(j.stdout), { fifo: "/x/c3/exit_fifo" });
  });
});

Deno.test("monitor, inspect and ps show the record for people and for scripts", async () => {
  await withDaemon(async (api, run) => {
    const m = await run(...MONITOR, "--name", "web", "--mount", "/m1", "--mount", "/m2");
    assert.equal(m.code, 0, m.stderr);
    assert.equal(m.stdout, "monitoring c1 (pid 4242, shim 4241, runtime runc)\n");
    assert.deepEqual(api.records.get("c1")?.mounts, ["/m1", "/m2"]);

    const j = await run("inspect", "c1", "--json");
    const record = JSON.parse(j.stdout);
    for (
      const key of ["id", "name", "runtime", "state", "pid", "ppid", "startTime", "pStartTime"]
    ) {
      assert.ok(key in record, key);
    }
    assert.equal(record.exit, null);
    assert.equal(record.name, "web");

    const human = await run("inspect", "c1");
    assert.match(human.stdout, /^id: +c1$/m);
    assert.match(human.stdout, /^state: +running$/m);
    assert.match(human.stdout, /^mounts: +\/m1, \/m2$/m);

    await run(...MONITOR.map((a) => (a === "c1" ? "c2" : a)));
    api.exit("c2", 137);
    const ps = await run("ps");
    const lines = ps.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID +NAME +RUNTIME +STATE +PID +PPID +EXIT +UPDATED$/);
    assert.match(lines[1]!, /^c1 +web +runc +running +4242 +4241 +- +/);
    assert.match(lines[2]!, /^c2 +c2 +runc +stopped +4242 +4241 +137 \(SIGKILL\) +/);
    // Columns line up: STATE starts at the same offset on every line.
    const col = lines[0]!.indexOf("STATE");
    assert.equal(lines[1]!.indexOf("running"), col);
    assert.equal(lines[2]!.indexOf("stopped"), col);
    const psJson = JSON.parse((await run("ps", "--json")).stdout);
    assert.deepEqual(psJson.map((r: { id: string }) => r.id), ["c1", "c2"]);

    const missing = await run("inspect", "nope");
    assert.equal(missing.code, Exit.FAILED);
    assert.equal(missing.stderr, "reaperd: no such container: nope\n");
    const badRuntime = await run(...MONITOR.map((a) => (a === "runc" ? "zz" : a)));
    assert.equal(badRuntime.code, Exit.FAILED);
    assert.equal(badRuntime.stderr, "reaperd: unknown runtime zz\n");
    const badId = await run("inspect", "../etc");
    assert.equal(badId.code, Exit.FAILED);
    assert.match(badId.stderr, /^reaperd: container id must be letters/);
  });
});

Deno.test("wait prints the code and exits with it; timeouts and unknown exits are distinct", async () => {
  await withDaemon(async (api, run) => {
    await run(...MONITOR);
    const timedOut = await run("wait", "c1", "--timeout", "0.05");
    assert.equal(timedOut.code, WaitExit.TIMEOUT);
    assert.equal(timedOut.stdout, "");
    assert.match(timedOut.stderr, /timed out after 0\.05s waiting for c1/);

    setTimeout(() => api.exit("c1", 3), 50);
    assert.deepEqual(await run("wait", "c1"), { code: 3, stdout: "3\n", stderr: "" });
    // Already exited: returns at once.
    assert.deepEqual(await run("wait", "c1", "--timeout", "5"), {
      code: 3,
      stdout: "3\n",
      stderr: "",
    });

    await run(...MONITOR.map((a) => (a === "c1" ? "c2" : a)));
    api.exit("c2", null);
    const unknown = await run("wait", "c2");
    assert.equal(unknown.code, WaitExit.UNKNOWN);
    assert.equal(unknown.stdout, "");
    assert.match(unknown.stderr, /c2 exited but its status is unknown: the shim died/);

    const none = await run("wait", "nope");
    assert.equal(none.code, WaitExit.ERROR);
    assert.equal(none.stderr, "reaperd: no such container: nope\n");
  });
});

Deno.test("gc add, ls and status; status exits 0 in GC and 1 when not", async () => {
  await withDaemon(async (api, run) => {
    const add = await run("gc", "add", "g1", "--runtime", "crun", "--pid", "10", "--ppid", "9");
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /^g1: in GC since just now, 0 attempts, next now\n$/);
    assert.equal(api.gc.get("g1")?.record.stateDir, "/var/run/isulad/crun/g1");

    const ls = await run("gc", "ls");
    assert.match(
      ls.stdout,
      /^ID +RUNTIME +ATTEMPTS +NEXT +PROC +LAST STEP +LAST ERROR\ng1 +crun +0 +now/,
    );
    const lsJson = JSON.parse((await run("gc", "ls", "--json")).stdout);
    assert.equal(lsJson[0].entry.id, "g1");

    assert.equal((await run("gc", "status", "g1")).code, 0);
    const not = await run("gc", "status", "other");
    assert.deepEqual(not, { code: 1, stdout: "other: not in GC\n", stderr: "" });
    assert.equal((await run("gc", "status", "other", "--json")).stdout, "null\n");
    const noPid = await run("gc", "add", "g2", "--runtime", "runc", "--pid", "0", "--ppid", "1");
    assert.equal(noPid.code, Exit.USAGE);
  });
});

Deno.test("events prints the log, as lines or NDJSON, and follows", async () => {
  await withDaemon(async (api, run) => {
    await run(...MONITOR);
    api.exit("c1", 0);
    const nd = await run("events", "--json");
    const events = nd.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => e.kind), ["monitor", "exit"]);
    const human = await run("events", "--since", "1");
    assert.match(human.stdout, /^ +2 +\d{4}-\d\d-\d\dT[^ ]+ +exit +stopped +c1 +\{"exit":/);
    assert.equal(human.stdout.trimEnd().split("\n").length, 1);

    setTimeout(() => api.exit("c1", 1), 50);
    const followed = await run("events", "--follow", "--since", "2", "--limit", "1", "--json");
    assert.equal(JSON.parse(followed.stdout).seq, 3);
  });
});

Deno.test("health and metrics", async () => {
  await withDaemon(async (_api, run) => {
    const h = await run("health");
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^status: +ok$/m);
    assert.equal(JSON.parse((await run("health", "--json")).stdout).status, "ok");
    const m = await run("metrics");
    assert.match(m.stdout, /^reaperd_monitored 0$/m);
  });
});

Deno.test("serve loads the config (flags over file) and returns serve()'s exit code", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/reaperd.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({ db: "/from/file.db", stateRoot: "/from/file" }),
    );
    let seen: Config | null = null;
    const serve = (config: Config) => {
      seen = config;
      return Promise.resolve(7);
    };
    const r = await cli(
      [
        "serve",
        "--config",
        file,
        "--socket",
        "rel.sock",
        "--state-root",
        "/flag/root",
        "--log-level",
        "error",
      ],
      { serve },
    );
    assert.equal(r.code, 7, r.stderr);
    const config = seen as Config | null;
    assert.equal(config?.socket, "/work/rel.sock");
    assert.equal(config?.db, "/from/file.db");
    assert.equal(config?.stateRoot, "/flag/root");
    assert.equal(config?.logLevel, "error");

    await Deno.writeTextFile(file, JSON.stringify({ gc: { concurrency: "8" } }));
    const bad = await cli(["serve", "--config", file], { serve });
    assert.equal(bad.code, Exit.CONFIG);
    assert.equal(
      bad.stderr,
      `reaperd: config ${file}: gc.concurrency must be a positive integer, got "8"\n`,
    );
    const shown = await cli(["config", "--config", file.replace("reaperd.json", "none.json")]);
    assert.equal(shown.code, Exit.CONFIG);
    assert.match(shown.stderr, /cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config prints the effective configuration as JSON", async () => {
  const r = await cli(["config", "--db", "/tmp/x.db"], {
    env: envWith({ REAPERD_CONFIG: "/nonexistent/ok-only-if-named.json" }),
  });
  // A config file named by REAPERD_CONFIG must exist.
  assert.equal(r.code, Exit.CONFIG);
  const ok = await cli(["config", "--db", "/tmp/x.db"]);
  assert.equal(ok.code, 0, ok.stderr);
  const config = JSON.parse(ok.stdout);
  assert.equal(config.db, "/tmp/x.db");
  assert.equal(config.socket, "/run/reaperd/reaperd.sock");
  assert.equal(config.gc.concurrency, 8);
});
