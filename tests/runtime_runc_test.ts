/**
 * Cleanup against the real runc: containers started by the test shim in busybox bundles, their
 * exit read from the FIFO the way the daemon reads it, then the default plan run with runc as
 * configured (`{ "path": <runc> }`). Needs root, runc, busybox-static, gcc and cgroup v1's
 * freezer; where one is missing the tests are ignored with the command that enables them.
 */

import assert from "node:assert/strict";
import { RuntimeCleaner } from "../src/runtime/cleaner.ts";
import { defaultCleanupSettings, type RuntimeTable } from "../src/runtime/config.ts";
import { freezerFiles } from "../src/runtime/freezer.ts";
import { isAlive, readProcStat } from "../src/sys/proc.ts";
import type { ContainerRecord } from "../src/types.ts";
import {
  findRunc,
  makeBusyboxBundle,
  openExitFifo,
  readFifoBytes,
  type RunningShim,
  shimLog,
  startShim,
  stopShim,
} from "./fixtures/shim.ts";
import { needs } from "./support/needs.ts";

const withRunc = needs("root", "runc", "busybox", "cc");
const withRuncAndFreezer = needs("root", "runc", "busybox", "cc", "freezer-v1");

const decoder = new TextDecoder();

interface Scene {
  runc: string;
  tmp: string;
  stateRoot: string;
  stateDir: string;
  bundle: string;
  id: string;
}

async function scene(argv: string[]): Promise<Scene> {
  const runc = findRunc();
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-runc-" });
  const id = `reaperd-test-${crypto.randomUUID().slice(0, 8)}`;
  const stateRoot = `${tmp}/state`;
  const stateDir = `${stateRoot}/runc/${id}`;
  const bundle = `${tmp}/bundle`;
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await makeBusyboxBundle(bundle, argv, runc);
  return { runc, tmp, stateRoot, stateDir, bundle, id };
}

async function runcList(s: Scene): Promise<string> {
  const out = await new Deno.Command(s.runc, {
    args: ["--root", `${s.stateDir}/runc`, "list", "-q"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return decoder.decode(out.stdout);
}

/** Leaves nothing behind even when an assertion failed half-way. */
async function teardown(s: Scene | undefined, shim: RunningShim | undefined): Promise<void> {
  await stopShim(shim);
  if (s === undefined) return;
  try {
    await Deno.lstat(`${s.stateDir}/runc`);
    await new Deno.Command(s.runc, {
      args: ["--root", `${s.stateDir}/runc`, "delete", "--force", s.id],
      stdout: "null",
      stderr: "null",
    }).output();
  } catch {
    // Already cleaned by the plan under test.
  }
  await Deno.remove(s.tmp, { recursive: true });
}

function record(s: Scene, shim: RunningShim, extra: Partial<ContainerRecord> = {}) {
  return {
    id: s.id,
    name: s.id,
    runtime: "runc",
    stateDir: s.stateDir,
    mounts: [],
    paths: [],
    state: "gc",
    exit: null,
    createdAt: Date.now(),
    updatedAt: Date.now(),
    pid: shim.container.pid,
    startTime: shim.container.startTime,
    ppid: shim.shim.pid,
    pStartTime: shim.shim.startTime,
    ...extra,
  } satisfies ContainerRecord;
}

function cleaner(s: Scene): RuntimeCleaner {
  // What the config `{ "runtimes": { "runc": { "path": "/usr/sbin/runc" } } }` loads as.
  const runtimes: RuntimeTable = { runc: { path: s.runc, args: [] } };
  return new RuntimeCleaner({ runtimes, settings: defaultCleanupSettings(s.stateRoot) });
}

withRunc.test("runc: an exit code 3 arrives as 4 bytes, then cleanup deletes the container", async () => {
  let s: Scene | undefined;
  let shim: RunningShim | undefined;
  let fifo: ReturnType<typeof openExitFifo> | undefined;
  try {
    s = await scene(["sh", "-c", "exit 3"]);
    fifo = openExitFifo(s.stateDir);
    shim = await startShim({
      stateDir: s.stateDir,
      mode: { kind: "runc", runc: s.runc, id: s.id, bundle: s.bundle },
    });
    const bytes = await readFifoBytes(fifo.fd, 4, 15_000);
    assert.deepEqual(
      [...bytes],
      [...new Uint8Array(new Int32Array([3]).buffer)],
      `FIFO bytes; shim.log:\n${shimLog(s.stateDir)}`,
    );
    assert.equal((await shim.status).code, 0);
    // The shim left the container stopped, for reaperd to delete.
    assert.match(await runcList(s), new RegExp(`^${s.id}$`, "m"));

    const out = await cleaner(s).clean(record(s, shim));
    assert.equal(out.ok, true, `${out.error}\n${JSON.stringify(out.steps, null, 2)}`);
    assert.deepEqual(out.steps.map((st) => [st.step, st.ok]), [
      ["kill-shim", true],
      ["kill-container", true],
      ["runtime-kill", true],
      ["runtime-delete", true],
      ["unmount", true],
      ["remove-paths", true],
      ["remove-state-dir", true],
    ]);
    await assert.rejects(Deno.lstat(s.stateDir), Deno.errors.NotFound);
    // Asked after the state dir check: `runc list` creates its --root when it is missing.
    assert.doesNotMatch(await runcList(s), new RegExp(s.id));
  } finally {
    fifo?.close();
    await teardown(s, shim);
  }
});

withRuncAndFreezer.test("runc: a frozen container (state D) is thawed, killed and collected", async () => {
  let s: Scene | undefined;
  let shim: RunningShim | undefined;
  let fifo: ReturnType<typeof openExitFifo> | undefined;
  try {
    s = await scene(["sleep", "1000"]);
    fifo = openExitFifo(s.stateDir);
    shim = await startShim({
      stateDir: s.stateDir,
      mode: { kind: "runc", runc: s.runc, id: s.id, bundle: s.bundle },
    });
    const pid = shim.container.pid;
    const freezer = freezerFiles(pid).v1;
    assert.ok(freezer !== null, "no cgroup v1 freezer for the container");
    await Deno.writeTextFile(freezer, "FROZEN");
    for (let i = 0; i < 100 && Deno.readTextFileSync(freezer).trim() !== "FROZEN"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(Deno.readTextFileSync(freezer).trim(), "FROZEN");
    assert.equal(readProcStat(pid)?.state, "D", "a frozen task shows state D");

    const cgroupDir = freezer.slice(0, -"/freezer.state".length);
    const out = await cleaner(s).clean(record(s, shim, { paths: [cgroupDir] }));
    assert.equal(out.ok, true, `${out.error}\n${JSON.stringify(out.steps, null, 2)}`);
    assert.match(out.steps[1]?.stderrTail ?? "", /killed/);
    assert.ok(!isAlive(shim.container) || readProcStat(pid)?.state === "Z");
    const st = await shim.status;
    assert.equal(
      st.signal,
      "SIGKILL",
      `shim status ${JSON.stringify(st)}; steps ${JSON.stringify(out.steps)}; log ${
        shimLog(s.stateDir)
      }`,
    );
    // The shim was killed before it could report: the reader sees the writer gone, no bytes.
    assert.equal((await readFifoBytes(fifo.fd, 4, 100)).length, 0);
    await assert.rejects(Deno.lstat(s.stateDir), Deno.errors.NotFound);
    // Asked after the state dir check: `runc list` creates its --root when it is missing.
    assert.doesNotMatch(await runcList(s), new RegExp(s.id));
    await assert.rejects(Deno.lstat(cgroupDir), Deno.errors.NotFound);
  } finally {
    fifo?.close();
    await teardown(s, shim);
  }
});
