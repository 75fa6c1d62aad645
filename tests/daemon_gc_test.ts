/**
 * The collector inside the real daemon, driven by a fake runtime script: failures are retried
 * with backoff and counted, a hanging runtime is killed and retried, and GC survives SIGKILL.
 */
import assert from "node:assert/strict";
import { fakeRuntime, type RunningShim, startShim, stopShim } from "./fixtures/shim.ts";
import { readProcStat } from "../src/sys/proc.ts";
import type { ReaperEvent } from "../src/store/events.ts";
import { TestDaemon } from "./support/daemon.ts";
import { metric } from "./support/fault_util.ts";
import { until } from "./support/poll.ts";
import { needs } from "./support/needs.ts";

const withCc = needs("cc");

const BASE_MS = 200;
const MAX_MS = 1600;

async function events(d: TestDaemon, id: string): Promise<ReaperEvent[]> {
  const res = await d.api("GET", "/v1/events");
  return res.text.trim().split("\n").map((l) => JSON.parse(l) as ReaperEvent).filter((e) =>
    e.id === id
  );
}

async function stateOf(d: TestDaemon, id: string): Promise<string> {
  return ((await d.api("GET", `/v1/containers/${id}`)).body as { state: string }).state;
}

/** A fake-runtime daemon and one container that exits as soon as it is monitored. */
async function setUp(gc: Record<string, number> = {}) {
  const fakeDir = await Deno.makeTempDir({ prefix: "reaperd-fake-" });
  const d = await TestDaemon.start({
    runtimes: { flaky: { path: await fakeRuntime(), args: ["--fake-dir", fakeDir] } },
    gc: { backoffBaseMs: BASE_MS, backoffMaxMs: MAX_MS, ...gc },
  });
  return { d, fakeDir };
}

async function runContainer(d: TestDaemon, id: string): Promise<RunningShim> {
  const stateDir = `${d.stateRoot}/flaky/${id}`;
  assert.equal((await d.api("POST", "/v1/fifos", { stateDir })).status, 200);
  // The runtime's own root, as runc makes it: cleanup calls the runtime only when it exists.
  await Deno.mkdir(`${stateDir}/flaky`);
  const shim = await startShim({
    stateDir,
    mode: { kind: "exec", argv: ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 0"] },
  });
  const res = await d.api("POST", "/v1/containers", {
    id,
    runtime: "flaky",
    stateDir,
    pid: shim.container.pid,
    ppid: shim.shim.pid,
  });
  assert.equal(res.status, 201, res.text);
  await Deno.writeTextFile(`${stateDir}/go`, "");
  return shim;
}

withCc.test("GC: a runtime whose delete fails 3 times is retried with backoff, then the container is stopped", async () => {
  const { d, fakeDir } = await setUp();
  let shim: RunningShim | undefined;
  try {
    await Deno.writeTextFile(`${fakeDir}/fail-delete`, "3");
    shim = await runContainer(d, "flaky-1");
    // While it is in GC, `gc status` says so (exit 0) and shows the failing step once the
    // first attempt has failed.
    const view = await until("gc status 0 after a failed attempt", async () => {
      const r = await d.cli("gc", "status", "flaky-1", "--json");
      const v = r.code === 0 ? JSON.parse(r.stdout) : null;
      return v !== null && v.entry.attempts >= 1 ? v : null;
    });
    assert.equal(view.entry.lastStep, "runtime-delete");
    assert.match(view.entry.stderrTail, /device or resource busy/);

    await until("stopped", async () => (await stateOf(d, "flaky-1")) === "stopped" || null);
    const log = await events(d, "flaky-1");
    const attempts = log.filter((e) => e.kind === "gc" || e.kind === "gc-attempt");
    assert.deepEqual(attempts.map((e) => e.detail.attempts), [1, 2, 3]);
    assert.equal(log.at(-1)?.kind, "gc-done");
    // Each retry waits at least the lower bound of its backoff (equal jitter: half the ceiling).
    const times = [...attempts, log.at(-1)!].map((e) => e.at);
    for (let failures = 1; failures < times.length; failures++) {
      const ceiling = Math.min(MAX_MS, BASE_MS * 2 ** (failures - 1));
      const gap = times[failures]! - times[failures - 1]!;
      assert.ok(
        gap >= ceiling / 2 - 20,
        `retry ${failures}: waited ${gap} ms, backoff ≥ ${ceiling / 2}`,
      );
      assert.ok(gap <= ceiling + 2000, `retry ${failures}: waited ${gap} ms, backoff ≤ ${ceiling}`);
    }
    const argv = (await Deno.readTextFile(`${fakeDir}/argv.log`)).trim().split("\n");
    const root = `--root ${d.stateRoot}/flaky/flaky-1/flaky`;
    assert.equal(argv.filter((l) => l === `${root} delete --force flaky-1`).length, 4);
    // The init had exited and is known by its start time: nothing of it can run, so the
    // runtime's kill is skipped and only delete --force runs.
    assert.deepEqual(argv.filter((l) => l.includes(" kill ")), []);
    assert.equal((await d.cli("gc", "status", "flaky-1")).code, 1, "no longer in GC");
    await assert.rejects(Deno.stat(`${d.stateRoot}/flaky/flaky-1`), Deno.errors.NotFound);

    // Every attempt is counted, the first one after the exit and each retry, by result and step.
    const metrics = (await d.api("GET", "/metrics")).text;
    assert.equal(metric(metrics, 'reaperd_cleanups_total{result="failed"}'), 3);
    assert.equal(metric(metrics, 'reaperd_cleanups_total{result="ok"}'), 1);
    assert.equal(metric(metrics, 'reaperd_cleanup_step_failures_total{step="runtime-delete"}'), 3);
    assert.equal(metric(metrics, 'reaperd_gc_entries{state="none"}'), 0);
    assert.equal(metric(metrics, "reaperd_stopping_containers"), 0);
    assert.equal(metric(metrics, 'reaperd_exits_total{known="true"}'), 1);
    assert.match(metrics, /^reaperd_build_info\{version="[^"]+",deno="[^"]+"\} 1$/m);
    assert.ok(metric(metrics, "process_resident_memory_bytes")! > 1e6);
    assert.ok(metric(metrics, "process_open_fds")! > 3);
    const started = metric(metrics, "process_start_time_seconds")!;
    assert.ok(Math.abs(started - Date.now() / 1000) < 120, `start time ${started}`);
    // The log tells the story at the default level: the first failure with its step, the
    // second (the count doubled), not the third, then the success.
    const lines = d.logs.split("\n").filter((l) => l.includes("id=flaky-1"));
    const failures = lines.filter((l) => /cleanup of flaky-1 (failed|still failing)/.test(l));
    assert.equal(failures.length, 2, failures.join("\n"));
    assert.match(failures[0]!, /failed at runtime-delete: .* step=runtime-delete/);
    assert.match(
      failures[1]!,
      /still failing after 2 attempts at runtime-delete.* step=runtime-delete/,
    );
    assert.ok(lines.some((l) => /cleaned up flaky-1 after 4 attempts/.test(l)), lines.join("\n"));
  } finally {
    await stopShim(shim);
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});

withCc.test("GC: a runtime that hangs past the step timeout is killed and retried", async () => {
  const { d, fakeDir } = await setUp({ stepTimeoutMs: 300 });
  let shim: RunningShim | undefined;
  try {
    await Deno.writeTextFile(`${fakeDir}/hang`, "delete");
    shim = await runContainer(d, "hangs");
    const view = await until("a timed-out attempt", async () => {
      const r = await d.api("GET", "/v1/gc/hangs");
      const body = r.body as { entry?: { attempts: number; lastError: string } };
      return r.status === 200 && (body.entry?.attempts ?? 0) >= 2 ? body : null;
    });
    assert.match(view.entry!.lastError, /timed out|timeout/i);
    await Deno.remove(`${fakeDir}/hang`);
    await until("stopped", async () => (await stateOf(d, "hangs")) === "stopped" || null);
    const hung = (await Deno.readTextFile(`${fakeDir}/hang.pid`)).trim().split("\n").map(Number);
    assert.ok(hung.length >= 1);
    for (const pid of hung) {
      const stat = readProcStat(pid);
      assert.ok(stat === null || stat.state === "Z", `hung runtime call ${pid} was killed`);
    }
  } finally {
    await stopShim(shim);
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});

withCc.test("GC: SIGKILL the daemon mid-GC; after restart the entry and its attempts are there and it finishes", async () => {
  const { d, fakeDir } = await setUp();
  let shim: RunningShim | undefined;
  try {
    // Enough failures to span the restart; the runtime succeeds by itself after them.
    await Deno.writeTextFile(`${fakeDir}/fail-delete`, "5");
    shim = await runContainer(d, "survivor");
    const before = await until("two attempts", async () => {
      const r = await d.api("GET", "/v1/gc/survivor");
      const n = (r.body as { entry?: { attempts: number } }).entry?.attempts ?? 0;
      return n >= 2 ? n : null;
    });
    await d.stop("SIGKILL");
    await d.restart();
    const after = await d.api("GET", "/v1/gc/survivor");
    assert.equal(after.status, 200, "still in GC after the restart");
    assert.ok((after.body as { entry: { attempts: number } }).entry.attempts >= before);
    await until("stopped", async () => (await stateOf(d, "survivor")) === "stopped" || null);
    const log = await events(d, "survivor");
    assert.equal(log.filter((e) => e.kind === "gc-done").length, 1);
    // Attempts were counted across the restart, each once and in order. An attempt cut short
    // by the SIGKILL used up one failure but was never recorded, so 4 or 5 are on record.
    const counted = log.filter((e) => e.kind === "gc" || e.kind === "gc-attempt")
      .map((e) => e.detail.attempts);
    assert.ok(counted.length === 4 || counted.length === 5, `${counted}`);
    assert.deepEqual(counted, counted.map((_, i) => i + 1));
  } finally {
    await stopShim(shim);
    await d.dispose();
    await Deno.remove(fakeDir, { recursive: true });
  }
});
