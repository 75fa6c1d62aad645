/**
 * A container's registered path on a filesystem that never answers (a FUSE server that reads
 * a lookup and never replies). Whatever touches that path blocks for good, and a process
 * whose thread blocks there after SIGKILL sits in D state and cannot die. The daemon must
 * never be that process: it keeps answering, keeps recording other exits, stops on SIGTERM,
 * and reports the hung step (with the helper's D state) from GC.
 */

import assert from "node:assert/strict";
import { readProcStat } from "../src/sys/proc.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { HungFuse } from "./support/hung_fuse.ts";
import {
  crashRuntime,
  gcEntry,
  metric,
  report,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const RT = "crt";
const STEP_TIMEOUT_MS = 1_000;

/** GET /v1/health with a deadline; the time it took, or throws when it did not answer. */
async function healthWithin(daemon: TestDaemon, ms: number): Promise<number> {
  const started = performance.now();
  const answer = daemon.api("GET", "/v1/health");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`health did not answer within ${ms} ms`)), ms);
  });
  try {
    const res = await Promise.race([answer, late]);
    assert.equal(res.status, 200, res.text);
    return performance.now() - started;
  } finally {
    clearTimeout(timer);
    // A late answer must not surface as an unhandled rejection after the test.
    answer.catch(() => {});
  }
}

/** Resolves with the process status, or null when it is still running after `ms`. */
async function exitWithin(
  status: Promise<Deno.CommandStatus>,
  ms: number,
): Promise<Deno.CommandStatus | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([status, late]);
  } finally {
    clearTimeout(timer);
  }
}

needs("root", "fuse", "cc").test(
  "fault: a registered path on a hung FUSE filesystem never freezes the daemon",
  async () => {
    const log = await Deno.makeTempFile({ prefix: "reaperd-fault-hungpath-", suffix: ".log" });
    let fuse: HungFuse | undefined;
    let daemon: TestDaemon | undefined;
    const containers: TestContainer[] = [];
    try {
      fuse = await HungFuse.start();
      const { mnt } = fuse;
      daemon = await TestDaemon.start({
        runtimes: crashRuntime(RT, log),
        gc: { backoffBaseMs: 200, backoffMaxMs: 1_000, stepTimeoutMs: STEP_TIMEOUT_MS },
      });
      const d = daemon;

      const hung = await startContainer(d, {
        id: "hung",
        runtime: RT,
        monitor: { paths: [`${mnt}/never`] },
      });
      containers.push(hung);
      const others: TestContainer[] = [];
      for (let i = 0; i < 3; i++) {
        others.push(await startContainer(d, { id: `other${i}`, runtime: RT }));
      }
      containers.push(...others);

      await hung.exit(7);
      // The FUSE server saw the lookup of the registered path: whoever made it is now stuck.
      const held = await fuse.nextLine();
      assert.match(held ?? "", /^held \d+$/);
      const holder = Number(held!.split(" ")[1]);
      const healthMs = await healthWithin(d, 1_000);
      assert.notEqual(holder, d.pid, "the daemon itself looked the hung path up");
      // A registered mount below the hung filesystem: the unmount step hangs the same way.
      const hungMount = await startContainer(d, {
        id: "hung-mount",
        runtime: RT,
        monitor: { mounts: [`${mnt}/rootfs`] },
      });
      containers.push(hungMount);
      // Its lookup waits behind the first one (FUSE serializes lookups in a directory).
      await hungMount.exit(8);
      await Promise.all(others.map((c, i) => c.exit(30 + i)));
      for (const [i, c] of others.entries()) {
        const r = await waitStopped(d, c.id, 10_000);
        assert.equal(r.exit?.code, 30 + i);
      }
      const hungRecord = await waitFor("the hung container's exit", async () => {
        const r = await d.api("GET", "/v1/containers/hung");
        const body = r.body as { exit?: { code: number | null } | null };
        return body.exit?.code === 7 ? body : null;
      });
      assert.equal(hungRecord.exit?.code, 7);

      const entry = await waitFor("the hung step in GC", async () => {
        const e = await gcEntry(d, "hung");
        return e !== null && e.attempts >= 2 ? e : null;
      }, 20_000);
      assert.equal(entry.lastStep, "remove-paths");
      assert.match(entry.lastError ?? "", /no answer within 1000 ms/);
      assert.equal(entry.procState, "D");
      assert.equal(readProcStat(holder)?.state, "D", "the killed helper is stuck in D");
      const mountEntry = await waitFor("the hung unmount in GC", async () => {
        const e = await gcEntry(d, "hung-mount");
        return e !== null && e.attempts >= 2 ? e : null;
      }, 20_000);
      assert.equal(mountEntry.lastStep, "unmount");
      assert.match(mountEntry.lastError ?? "", /no answer within 1000 ms/);
      assert.equal(mountEntry.procState, "D");
      const mountHolder = Number(/pid (\d+)/.exec(mountEntry.lastError ?? "")?.[1]);
      assert.ok(![d.pid, holder].includes(mountHolder));
      assert.equal(readProcStat(mountHolder)?.state, "D");
      const metrics = (await d.api("GET", "/metrics")).text;
      assert.equal(metric(metrics, 'reaperd_gc_entries{state="D"}'), 2);
      const healthLaterMs = await healthWithin(d, 1_000);

      const stopping = performance.now();
      const status = await exitWithin(d.stop("SIGTERM"), 10_000);
      assert.ok(status !== null, "the daemon did not stop on SIGTERM");
      const stopMs = performance.now() - stopping;

      // The filesystem goes away; a new daemon on the same store finishes the cleanup.
      await fuse.kill();
      await waitFor(
        "the stuck helpers to end",
        () => readProcStat(holder) === null && readProcStat(mountHolder) === null,
        10_000,
      );
      await fuse.unmount();
      await d.restart();
      const done = await waitStopped(d, "hung", 15_000);
      assert.equal(done.exit?.code, 7);
      assert.equal(await gcEntry(d, "hung"), null);
      assert.equal((await waitStopped(d, "hung-mount", 15_000)).exit?.code, 8);
      report(
        `fault hung-path: health ${healthMs.toFixed(0)} ms / ${healthLaterMs.toFixed(0)} ms ` +
          `while a helper sat in D, ${others.length} other exits recorded, GC after ` +
          `${entry.attempts} attempts says "${entry.lastError}", SIGTERM stop ${
            stopMs.toFixed(0)
          } ms, ` +
          `cleaned by the next daemon once the filesystem went away`,
      );
    } finally {
      // The server goes first: that releases whatever is stuck on the mount, daemon included.
      await fuse?.dispose();
      for (const c of containers) await stopShim(c.shim);
      await daemon?.dispose();
      await Deno.remove(log);
    }
  },
);
