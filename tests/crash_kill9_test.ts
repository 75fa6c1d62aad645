/**
 * Crash safety under kill -9 (issue 5): the real daemon with 300 containers (real test shims),
 * exits in storms, and 24 SIGKILLs at random instants, half aimed at exit recording and half at
 * GC retries, each followed by a restart. After the last restart and a drain: no container
 * missing, no exit recorded twice, no wrong code, every lost status unknown with a reason and
 * explained by a kill, no GC entry lost, every container stopped, repeated cleanup steps
 * harmless, and no state dir, process or descriptor left behind. See
 * tests/support/crash_harness.ts for the precise rules; `deno task soak` runs the long version.
 *
 * Replay a failure with REAPERD_CRASH_SEED=<seed printed in the failure>.
 */

import assert from "node:assert/strict";
import { needs } from "./support/needs.ts";
import {
  checkCrashRun,
  type CrashRun,
  type CrashVerdict,
  describeVerdict,
  runCrashScenario,
} from "./support/crash_harness.ts";

const CONTAINERS = 300;
const KILLS = 24;

/** Fails with the summary, every violation and the tail of the daemons' logs when any was found. */
function assertNoViolations(verdict: CrashVerdict, run: CrashRun, summary: string): void {
  assert.deepEqual(
    verdict.violations,
    [],
    `${summary}\nviolations:\n${verdict.violations.join("\n")}\n--- daemon logs (tail) ---\n` +
      run.daemonLogs.slice(-20_000),
  );
}

needs("cc").test({
  name: `kill -9 of the daemon ${KILLS} times among ${CONTAINERS} exiting containers loses nothing`,
  sanitizeResources: true,
  sanitizeOps: true,
}, async () => {
  const seed = Number(Deno.env.get("REAPERD_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const run = await runCrashScenario({ containers: CONTAINERS, kills: KILLS, seed });
  const verdict = checkCrashRun(run);
  const summary = describeVerdict(verdict, run);
  // The counts are the point of this test: show them even when it passes.
  await Deno.stdout.write(new TextEncoder().encode(`crash: ${summary}\n`));
  assertNoViolations(verdict, run, summary);
  assert.equal(verdict.killsSurvived, KILLS);
  assert.ok(verdict.containers >= CONTAINERS, "the pool was topped up, never shrunk");
  assert.ok(verdict.wentThroughGc > 0, "some cleanups went through GC");
  assert.ok(verdict.killsWithWorkInFlight >= KILLS / 2, `kills that hit work: ${summary}`);
});

const STORE_CONTAINERS = 120;
const STORE_KILLS = 12;

needs("cc").test({
  name: `with the fd store, kill -9 of the daemon ${STORE_KILLS} times loses no exit and ` +
    "leaves none unknown",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const seed = Number(Deno.env.get("REAPERD_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const run = await runCrashScenario({
    containers: STORE_CONTAINERS,
    kills: STORE_KILLS,
    seed,
    maxDownExits: 6,
    fdStoreMax: 32_000,
  });
  const verdict = checkCrashRun(run);
  const summary = describeVerdict(verdict, run);
  await Deno.stdout.write(new TextEncoder().encode(`crash: ${summary}\n`));
  assertNoViolations(verdict, run, summary);
  assert.equal(verdict.unknown, 0);
  assert.equal(verdict.killsSurvived, STORE_KILLS);
  assert.ok(
    run.kills.reduce((n, k) => n + k.downExits, 0) > 0,
    "some containers exited while the daemon was down",
  );
});
