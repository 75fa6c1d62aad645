/**
 * The start-up sweep of the state root against the real daemon: the containers it adopts are
 * found where the configured `stateDirPattern` puts them, and a status it finds or is later
 * written into an adopted FIFO survives the daemon being killed before it was recorded.
 */
import assert from "node:assert/strict";
import * as libc from "../src/sys/libc.ts";
import { TestDaemon } from "./support/daemon.ts";
import { shimWriter, writeExit } from "./support/fake_container.ts";
import { record, waitFor, waitStopped } from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

/** The test service manager is built with cc. */
const withCc = needs("cc");

const FLAGS = libc.O.NONBLOCK | libc.O.CLOEXEC;

/** Makes `<stateDir>/exit_fifo`; returns its path. */
async function fifoIn(stateDir: string): Promise<string> {
  await Deno.mkdir(stateDir, { recursive: true });
  const fifo = `${stateDir}/exit_fifo`;
  libc.mkfifo(fifo, 0o600);
  return fifo;
}

/** A config's `runtimes` with only these (the defaults found on PATH removed). */
function onlyRuntimes(...names: string[]): Record<string, unknown> {
  return {
    runc: null,
    crun: null,
    ...Object.fromEntries(names.map((name) => [name, { path: "/bin/true", args: [] }])),
  };
}

Deno.test("state root sweep: a daemon with another stateDirPattern adopts the orphans of its layout, and only those", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  const state = `${dir}/state`;
  const dirOf = (runtime: string, id: string) => `${state}/engine/${runtime}/${id}/bundle`;
  await fifoIn(dirOf("fake", "lost"));
  const writer = shimWriter(await fifoIn(dirOf("other", "held")));
  // Not this layout, a runtime not configured, an id dir reached through a symlink.
  await fifoIn(`${state}/fake/default`);
  await fifoIn(dirOf("absent", "stray"));
  await fifoIn(`${dir}/outside/bundle`);
  await Deno.symlink(`${dir}/outside`, `${state}/engine/fake/linked`);
  const d = await TestDaemon.start({
    dir,
    runtimes: { fake: { path: "/bin/true" }, other: { path: "/bin/true" } },
    extra: { stateDirPattern: "{stateRoot}/engine/{runtime}/{id}/bundle" },
  });
  try {
    const lost = await waitStopped(d, "lost");
    assert.deepEqual([lost.runtime, lost.stateDir, lost.pid], ["fake", dirOf("fake", "lost"), 0]);
    assert.equal(lost.exit?.known, false);
    assert.match(lost.exit!.reason, /no shim holds its exit FIFO/);
    const held = await record(d, "held");
    assert.deepEqual([held?.state, held?.runtime], ["running", "other"]);
    writeExit(writer, 5);
    libc.close(writer);
    const done = await waitStopped(d, "held");
    assert.deepEqual([done.exit?.known, done.exit?.code], [true, 5]);
    for (const id of ["default", "stray", "linked"]) assert.equal(await record(d, id), null, id);
    assert.match(d.logs, /adopted 2 containers/);
    // Cleaned like any other: the state dir of the layout is gone.
    await waitFor("lost's state dir removed", async () => {
      try {
        await Deno.lstat(dirOf("fake", "lost"));
        return false;
      } catch (e) {
        return e instanceof Deno.errors.NotFound;
      }
    });
    const events = (await d.api("GET", "/v1/events?since=0")).text;
    assert.match(events, /"kind":"restore"[^\n]*"adopted":2/);
  } finally {
    await d.dispose();
  }
});

Deno.test("state root sweep: a layout without {runtime} adopts with the one runtime configured, and with two adopts nothing and says why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  await fifoIn(`${dir}/state/ctr/solo`);
  const one = await TestDaemon.start({
    dir,
    extra: { stateDirPattern: "{stateRoot}/ctr/{id}", runtimes: onlyRuntimes("fake") },
  });
  try {
    const solo = await waitStopped(one, "solo");
    assert.deepEqual([solo.runtime, solo.stateDir], ["fake", `${dir}/state/ctr/solo`]);
  } finally {
    await one.stop();
  }
  const dir2 = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  await fifoIn(`${dir2}/state/ctr/twin`);
  const two = await TestDaemon.start({
    dir: dir2,
    extra: { stateDirPattern: "{stateRoot}/ctr/{id}", runtimes: onlyRuntimes("fake", "other") },
  });
  try {
    assert.equal(await record(two, "twin"), null);
    assert.match(
      two.logs,
      /ctr\/twin not adopted: .*does not name the runtime and 2 runtimes are configured \(fake, other\)/,
    );
    assert.ok((await Deno.lstat(`${dir2}/state/ctr/twin/exit_fifo`)).isFifo, "left in place");
  } finally {
    await two.dispose();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

withCc.test({
  name:
    "state root sweep: an adopted FIFO's read end is kept by the service manager, so no status is lost to a kill -9",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-daemon-" });
  // Its shim wrote 9 and left; only this reader kept the status until the daemon came.
  const wroteFifo = await fifoIn(`${dir}/state/fake/wrote`);
  const keeper = libc.open(wroteFifo, libc.O.RDONLY | FLAGS);
  const shim = libc.open(wroteFifo, libc.O.WRONLY | FLAGS);
  writeExit(shim, 9);
  libc.close(shim);
  // Its shim still holds the write end: watched.
  const writer = shimWriter(await fifoIn(`${dir}/state/fake/held`));
  const d = await TestDaemon.start({ dir, serviceManager: { storeMax: 4096 } });
  try {
    const wrote = await waitStopped(d, "wrote");
    assert.deepEqual([wrote.exit?.known, wrote.exit?.code], [true, 9]);
    assert.equal(libc.read(keeper, new Uint8Array(8)), 0, "consumed once recorded");
    assert.equal((await record(d, "held"))?.state, "running");
    await d.stop("SIGKILL");
    // The shim writes while no daemon runs: the manager's copy of the read end takes it.
    writeExit(writer, 7);
    libc.close(writer);
    await d.restart();
    const held = await waitStopped(d, "held", 20_000);
    assert.deepEqual([held.exit?.known, held.exit?.code], [true, 7]);
    const stats = await waitFor("the fd store to empty", async () => {
      const s = await d.fdStoreStats();
      return s.stored === 0 ? s : null;
    });
    assert.ok(stats.received >= 2, JSON.stringify(stats));
  } finally {
    libc.close(keeper);
    await d.dispose();
  }
});
