/**
 * The bundle (`deno task bundle`) run as the README's install section says, outside the
 * repository, where no deno.json turns Deno's unstable APIs on.
 */
import assert from "node:assert/strict";
import { SERVE_FLAGS } from "../src/cli/deno_flags.ts";
import type { CliResult } from "./support/daemon.ts";
import { until } from "./support/poll.ts";

const REPO = new URL("..", import.meta.url).pathname;

async function deno(cwd: string, ...args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd, stdin: "null" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

let bundled: Promise<CliResult> | undefined;

/** `deno task bundle`, run once for the tests of this file: they all use the same dist/. */
function bundle(): Promise<CliResult> {
  return bundled ??= deno(REPO, "task", "-q", "bundle");
}

/** Starts the bundle in `dir` as a daemon with the flags it names, as the README says to. */
function serveBundle(dir: string, paths: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...SERVE_FLAGS.split(" "), "reaperd.js", "serve", ...paths],
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test("the bundle's serve without --unstable-kv… says which flags it needs and exits 78", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bundle-" });
  let daemon: Deno.ChildProcess | undefined;
  try {
    const built = await bundle();
    assert.equal(built.code, 0, built.stderr);
    await Deno.copyFile(`${REPO}dist/reaperd.js`, `${dir}/reaperd.js`);
    const paths = ["--socket", `${dir}/r.sock`, "--db", `${dir}/r.db`, "--state-root", `${dir}/s`];

    const bare = await deno(dir, "run", "-A", "reaperd.js", "serve", ...paths);
    assert.equal(bare.code, 78);
    assert.equal(bare.stdout, "");
    assert.equal(
      bare.stderr,
      `reaperd: serve needs Deno's --unstable-kv --unstable-net: run it as: ` +
        `deno run -A ${SERVE_FLAGS} ${dir}/reaperd.js serve\n`,
    );
    // Client commands need no flags.
    const version = await deno(dir, "run", "-A", "reaperd.js", "--version");
    assert.equal(version.code, 0, version.stderr);

    // With the flags it names, the same bundle serves, and a flagless client reaches it.
    daemon = serveBundle(dir, paths);
    const health = await until("the bundle's daemon answers", async () => {
      const r = await deno(dir, "run", "-A", "reaperd.js", "health", "--socket", `${dir}/r.sock`);
      return r.code === 0 ? r : null;
    });
    assert.match(health.stdout, /^status: +ok$/m);
  } finally {
    daemon?.kill("SIGTERM");
    await daemon?.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundle's daemon cleans a registered path through itself as the path helper", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bundle-" });
  let daemon: Deno.ChildProcess | undefined;
  let client: Deno.HttpClient | undefined;
  try {
    const built = await bundle();
    assert.equal(built.code, 0, built.stderr);
    await Deno.copyFile(`${REPO}dist/reaperd.js`, `${dir}/reaperd.js`);
    // Nothing beside the bundle: the helper can only be the bundle itself.
    const leftover = `${dir}/leftover`;
    await Deno.writeTextFile(leftover, "x");
    const paths = ["--socket", `${dir}/r.sock`, "--db", `${dir}/r.db`, "--state-root", `${dir}/s`];
    daemon = serveBundle(dir, paths);
    client = Deno.createHttpClient({ proxy: { transport: "unix", path: `${dir}/r.sock` } });
    const c = client;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://reaperd${path}`, {
        method,
        client: c,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: await res.json() };
    };
    await until("the bundle's daemon answers", async () => {
      try {
        return (await api("GET", "/v1/health")).status === 200 ? true : null;
      } catch {
        return null;
      }
    });
    // A process long gone: nothing is left to kill, only the path to remove.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const added = await api("POST", "/v1/gc", {
      id: "bundled",
      runtime: "runc",
      pid: gone.pid,
      ppid: 0,
      startTime: 1,
      paths: [leftover],
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    const done = await until("the cleanup", async () => {
      const r = await api("GET", "/v1/containers/bundled");
      const record = r.body as { state?: string };
      return record.state === "stopped" ? record : null;
    }, 30_000);
    assert.equal(done.state, "stopped");
    await assert.rejects(Deno.lstat(leftover), Deno.errors.NotFound);
  } finally {
    client?.close();
    daemon?.kill("SIGTERM");
    await daemon?.status;
    await Deno.remove(dir, { recursive: true });
  }
});
