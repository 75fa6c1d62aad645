import assert from "node:assert/strict";
import type { Config, ConfigEnvironment } from "../config.ts";
import { VERSION } from "../version.ts";
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
    [["rm"], /missing required argument 'id'/],
    [
      ["completion", "fish"],
      /value 'fish' is invalid for argument 'shell'\. choose one of bash, zsh\./,
    ],
    [["ps", "--filter", "state"], /filters are key=value \(keys: state, runtime\)/],
    [["ps", "--filter", "color=red"], /unknown filter key color \(keys: state, runtime\)/],
    [["events", "--filter", "id="], /filters are key=value \(keys: id, kind\)/],
    [
      ["events", "--filter", "id=a,kind=boom"],
      /kind must be one of monitor, exit, exit-lost, stopped/,
    ],
    [["gc", "retry"], /missing required argument 'id'/],
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
      `reaperd: config ${file}: gc.concurrency must be an integer from 1 to 10000, got "8"\n`,
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

Deno.test("--version prints the version and exits 0", async () => {
  for (const flag of ["--version", "-V"]) {
    assert.deepEqual(await cli([flag]), { code: 0, stdout: `${VERSION}\n`, stderr: "" });
  }
});

Deno.test("serve without Deno's unstable flags says which, in one line, and exits 78", async () => {
  let served = false;
  const r = await cli(["serve", "--db", "/tmp/never.db"], {
    serve: () => {
      served = true;
      return Promise.resolve(0);
    },
    serveBlocked: () => "serve needs Deno's --unstable-kv: run it as: deno run -A x serve",
  });
  assert.deepEqual(r, {
    code: Exit.CONFIG,
    stdout: "",
    stderr: "reaperd: serve needs Deno's --unstable-kv: run it as: deno run -A x serve\n",
  });
  assert.equal(served, false);
});

Deno.test("relative paths are taken from INIT_CWD when deno task set it, else from the cwd", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/reaperd.json`, JSON.stringify({ stateRoot: "/from/file" }));
    // No cwd given: the CLI works it out as it does for a user.
    const fromTask = await runCli(["config", "--config", "reaperd.json", "--db", "r.db"], {
      env: envWith({ INIT_CWD: dir }),
      output: new MemoryOutput(),
    });
    assert.equal(fromTask, 0);
    const out = new MemoryOutput();
    await runCli(["config", "--config", "reaperd.json", "--db", "r.db"], {
      env: envWith({ INIT_CWD: dir }),
      output: out,
    });
    const config = JSON.parse(out.stdout);
    assert.equal(config.db, `${dir}/r.db`);
    assert.equal(config.stateRoot, "/from/file");
    const plain = new MemoryOutput();
    await runCli(["config", "--db", "r.db"], { env: envWith({}), output: plain });
    assert.equal(JSON.parse(plain.stdout).db, `${Deno.cwd()}/r.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an INIT_CWD inherited from an outer deno task or npm script does not move relative paths", async () => {
  const caller = await Deno.makeTempDir();
  const stale = await Deno.makeTempDir();
  try {
    // A shell started under `deno task` (or `npm run`) keeps its INIT_CWD after a cd: reaperd
    // run there directly must take paths from where it runs, as every other command does.
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        "config",
        "--db",
        "r.db",
      ],
      cwd: caller,
      env: { INIT_CWD: stale, REAPERD_CONFIG: "" },
      stdin: "null",
    }).output();
    assert.equal(new TextDecoder().decode(out.stderr), "");
    assert.equal(out.code, 0);
    assert.equal(JSON.parse(new TextDecoder().decode(out.stdout)).db, `${caller}/r.db`);
  } finally {
    await Deno.remove(caller, { recursive: true });
    await Deno.remove(stale, { recursive: true });
  }
});
