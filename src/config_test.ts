import assert from "node:assert/strict";
import {
  applyOverrides,
  type Config,
  type ConfigEnvironment,
  ConfigError,
  defaultConfig,
  defaultSocketPath,
  loadConfig,
  lookPath,
  parseConfig,
} from "./config.ts";

function fakeEnv(
  uid: number,
  vars: Record<string, string> = {},
  found: Record<string, string> = { runc: "/usr/sbin/runc" },
): ConfigEnvironment {
  return { uid, getEnv: (name) => vars[name], lookPath: (name) => found[name] ?? null };
}

const rootEnv = fakeEnv(0);
const base: Config = defaultConfig(rootEnv);

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.ok(!e.message.includes("\n"), "error must be one line");
    return e.message;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("defaultConfig() as root uses the system paths of docs/architecture.md §8", () => {
  assert.equal(base.socket, "/run/reaperd/reaperd.sock");
  assert.equal(base.db, "/var/lib/reaperd/reaperd.db");
  assert.equal(base.stateRoot, "/var/run/isulad");
  assert.deepEqual(base.gc, {
    concurrency: 8,
    backoffBaseMs: 500,
    backoffMaxMs: 60000,
    stepTimeoutMs: 30000,
  });
  assert.equal(base.heldFifoTimeoutMs, 60000);
  assert.equal(base.eventLogMax, 100000);
  assert.equal(base.stoppedRetentionMs, 86_400_000);
  assert.equal(base.logLevel, "info");
  assert.equal(base.source, null);
});

Deno.test("defaultConfig() keeps only the runtimes whose binary is found", () => {
  assert.deepEqual(base.runtimes, { runc: { path: "/usr/sbin/runc", args: [], kind: "oci" } });
  const all = defaultConfig(
    fakeEnv(0, {}, { runc: "/a/runc", crun: "/b/crun", "kata-runtime": "/c/kata-runtime" }),
  );
  assert.deepEqual(Object.keys(all.runtimes).sort(), ["crun", "kata", "runc"]);
  assert.equal(all.runtimes.kata?.path, "/c/kata-runtime");
  assert.equal(all.runtimes.kata?.kind, "kata");
});

Deno.test("defaultConfig() as a user puts everything under XDG dirs", () => {
  const c = defaultConfig(fakeEnv(1000, { XDG_RUNTIME_DIR: "/run/user/1000", HOME: "/home/u" }));
  assert.equal(c.socket, "/run/user/1000/reaperd/reaperd.sock");
  assert.equal(c.db, "/home/u/.local/state/reaperd/reaperd.db");
  assert.equal(c.stateRoot, "/run/user/1000/isulad");
});

Deno.test("defaultSocketPath() prefers $REAPERD_SOCKET", () => {
  assert.equal(defaultSocketPath(rootEnv), "/run/reaperd/reaperd.sock");
  assert.equal(defaultSocketPath(fakeEnv(0, { REAPERD_SOCKET: "/tmp/x.sock" })), "/tmp/x.sock");
});

Deno.test("parseConfig() applies every key", () => {
  const c = parseConfig(
    JSON.stringify({
      socket: "/run/r.sock",
      db: "/data/r.db",
      stateRoot: "/var/run/other",
      runtimes: {
        runc: { path: "/opt/runc" },
        kata: { path: "/opt/kata", args: ["--debug"], kind: "kata", root: true },
      },
      gc: { concurrency: 2, backoffBaseMs: 10, backoffMaxMs: 20, stepTimeoutMs: 30 },
      heldFifoTimeoutMs: 5,
      eventLogMax: 6,
      stoppedRetentionMs: 0,
      logLevel: "debug",
    }),
    "/etc/r.json",
    base,
  );
  assert.equal(c.socket, "/run/r.sock");
  assert.equal(c.db, "/data/r.db");
  assert.equal(c.stateRoot, "/var/run/other");
  assert.deepEqual(c.runtimes, {
    runc: { path: "/opt/runc", args: [], kind: "oci" },
    kata: { path: "/opt/kata", args: ["--debug"], kind: "kata", root: true },
  });
  assert.deepEqual(c.gc, {
    concurrency: 2,
    backoffBaseMs: 10,
    backoffMaxMs: 20,
    stepTimeoutMs: 30,
  });
  assert.equal(c.heldFifoTimeoutMs, 5);
  assert.equal(c.eventLogMax, 6);
  assert.equal(c.stoppedRetentionMs, 0);
  assert.equal(c.logLevel, "debug");
  assert.equal(c.source, "/etc/r.json");
  // The base is not modified.
  assert.equal(base.gc.concurrency, 8);
  assert.equal(base.runtimes.kata, undefined);
});

Deno.test("parseConfig() removes a default runtime given as null", () => {
  const c = parseConfig('{"runtimes": {"runc": null}}', "f", base);
  assert.deepEqual(c.runtimes, {});
});

Deno.test("parseConfig() names the key in every error", () => {
  const cases: [string, RegExp][] = [
    [
      '{"gc": {"concurrency": "8"}}',
      /^config \/etc\/reaperd\.json: gc\.concurrency must be an integer from 1 to 10000, got "8"$/,
    ],
    ['{"gc": {"concurrency": 0}}', /gc\.concurrency must be an integer from 1 to 10000, got 0/],
    ['{"gc": {"concurrency": 1.5}}', /gc\.concurrency must be an integer from 1/],
    ['{"gc": {"speed": 1}}', /gc\.speed is not a known key/],
    ['{"gc": 3}', /: gc must be an object/],
    ['{"gc": {"backoffBaseMs": 100, "backoffMaxMs": 50}}', /gc\.backoffMaxMs must be at least/],
    ['{"sockets": "/x"}', /: sockets is not a known key \(known: socket, db/],
    ['{"socket": "run/r.sock"}', /: socket must be an absolute path, got "run\/r\.sock"/],
    [`{"socket": "/${"a".repeat(120)}"}`, /: socket must be at most 107 bytes/],
    ['{"db": 5}', /: db must be a string, got 5/],
    ['{"stateRoot": "/a/../b"}', /: stateRoot must not contain "\." or "\.\." components/],
    ['{"runtimes": []}', /: runtimes must be an object/],
    ['{"runtimes": {"runc": "/usr/sbin/runc"}}', /runtimes\.runc must be an object like/],
    ['{"runtimes": {"runc": {}}}', /runtimes\.runc\.path is required/],
    ['{"runtimes": {"runc": {"path": "runc"}}}', /runtimes\.runc\.path must be an absolute path/],
    [
      '{"runtimes": {"runc": {"path": "/r", "args": "x"}}}',
      /runtimes\.runc\.args must be an array of strings/,
    ],
    [
      '{"runtimes": {"runc": {"path": "/r", "root": "/x"}}}',
      /runtimes\.runc\.root must be true or false/,
    ],
    [
      '{"runtimes": {"runc": {"path": "/r", "bin": "/x"}}}',
      /runtimes\.runc\.bin is not a known key/,
    ],
    ['{"runtimes": {"a/b": {"path": "/r"}}}', /runtimes\["a\/b"\] name must be letters/],
    ['{"logLevel": "loud"}', /logLevel must be one of trace, debug, info, warning, error, fatal/],
    [
      '{"heldFifoTimeoutMs": -1}',
      /heldFifoTimeoutMs must be an integer from 1 to 2147483647 ms, got -1/,
    ],
    ['{"eventLogMax": null}', /eventLogMax must be an integer from 1 to 100000000, got null/],
    [
      '{"http": {"responseTimeoutMs": 0}}',
      /http\.responseTimeoutMs must be an integer from 1 to 2147483647 ms, got 0/,
    ],
    [
      '{"stoppedRetentionMs": -5}',
      /stoppedRetentionMs must be an integer from 0 to \d+ ms, got -5/,
    ],
    [
      '{"gc": {"stepTimeoutMs": 3e9}}',
      /gc\.stepTimeoutMs must be an integer from 1 to 2147483647 ms/,
    ],
    [
      '{"gc": {"backoffMaxMs": 2147483648}}',
      /gc\.backoffMaxMs must be an integer from 1 to 2147483647/,
    ],
    ['{"heldFifoTimeoutMs": 3e9}', /heldFifoTimeoutMs must be an integer from 1 to 2147483647 ms/],
    ['{"stoppedRetentionMs": 1e300}', /stoppedRetentionMs must be an integer from 0 to/],
    ['{"gc": {"concurrency": 1e9}}', /gc\.concurrency must be an integer from 1 to 10000/],
    [
      '{"runtimes": {"vm": {"path": "/r", "kind": "vm"}}}',
      /runtimes\.vm\.kind must be one of .*kata.*oci/,
    ],
    ['{"stateDirPattern": "{stateRoot}/{runtime}"}', /stateDirPattern must hold "\{id\}" once/],
    ["[1]", /: must be a JSON object/],
    ["{oops", /: not valid JSON: /],
  ];
  for (const [text, re] of cases) {
    const message = configError(() => parseConfig(text, "/etc/reaperd.json", base));
    assert.match(message, re, text);
  }
});

Deno.test("applyOverrides() lets flags win and names the flag in errors", () => {
  const c = applyOverrides(base, { socket: "/tmp/s.sock", db: "/tmp/d.db", stateRoot: "/tmp/st" });
  assert.equal(c.socket, "/tmp/s.sock");
  assert.equal(c.db, "/tmp/d.db");
  assert.equal(c.stateRoot, "/tmp/st");
  assert.match(
    configError(() => applyOverrides(base, { db: "x.db" })),
    /^--db must be an absolute path/,
  );
  assert.match(
    configError(() => applyOverrides(base, { stateRoot: "/a\u0000b" })),
    /^--state-root must not contain NUL/,
  );
});

Deno.test("loadConfig() reads the named file, then REAPERD_SOCKET, then flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/reaperd.json`;
    await Deno.writeTextFile(file, '{"socket": "/from/file.sock", "db": "/from/file.db"}');
    const c1 = await loadConfig({ file, env: rootEnv });
    assert.equal(c1.socket, "/from/file.sock");
    assert.equal(c1.db, "/from/file.db");
    assert.equal(c1.source, file);
    const c2 = await loadConfig({
      file,
      env: fakeEnv(0, { REAPERD_SOCKET: "/from/env.sock" }),
      overrides: { db: "/from/flag.db" },
    });
    assert.equal(c2.socket, "/from/env.sock");
    assert.equal(c2.db, "/from/flag.db");
    const c3 = await loadConfig({
      env: fakeEnv(0, { REAPERD_CONFIG: file }),
      overrides: { socket: "/from/flag.sock" },
    });
    assert.equal(c3.socket, "/from/flag.sock");
    assert.equal(c3.db, "/from/file.db");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() fails on a named file that is missing, not on a missing default", async () => {
  await assert.rejects(
    loadConfig({ file: "/nonexistent/reaperd.json", env: rootEnv }),
    (e: Error) =>
      e instanceof ConfigError &&
      /^config \/nonexistent\/reaperd\.json: cannot read/.test(e.message),
  );
  const dir = await Deno.makeTempDir();
  try {
    const c = await loadConfig({ env: fakeEnv(1000, { HOME: dir, XDG_RUNTIME_DIR: dir }) });
    assert.equal(c.source, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lookPath() finds an executable in the given dirs only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tool`, "#!/bin/sh\n");
    assert.equal(lookPath("tool", [dir]), null, "not executable yet");
    await Deno.chmod(`${dir}/tool`, 0o755);
    assert.equal(lookPath("tool", ["/nonexistent", dir]), `${dir}/tool`);
    assert.equal(lookPath("sh", [dir]), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
