/**
 * Signals whose default action ends a process: the daemon survives each, keeps answering, and
 * records an exit that comes at the same moment. SIGHUP reads the config again.
 */
import assert from "node:assert/strict";
import { startBareContainer } from "./support/bare_container.ts";
import { TestDaemon } from "./support/daemon.ts";
import { until } from "./support/poll.ts";

async function recorded(d: TestDaemon, id: string): Promise<{ code: number | null }> {
  return await until(`${id} recorded`, async () => {
    const res = await d.api("GET", `/v1/containers/${id}`);
    const body = res.body as { state: string; exit: { code: number | null } | null };
    return res.status === 200 && body.state !== "running" ? body.exit! : null;
  }, 10_000);
}

for (const signal of ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM"] as const) {
  Deno.test(`signals: ${signal} leaves the daemon serving, and an exit sent with it is recorded`, async () => {
    const d = await TestDaemon.start();
    try {
      const during = await startBareContainer(d, "during");
      const after = await startBareContainer(d, "after");
      Deno.kill(d.pid, signal);
      await during.exit(3);
      await new Promise((r) => setTimeout(r, 300));
      const health = await d.api("GET", "/v1/health");
      assert.equal(health.status, 200, d.logs);
      assert.equal((await recorded(d, "during")).code, 3);
      Deno.kill(d.pid, signal);
      await new Promise((r) => setTimeout(r, 200));
      await after.exit(4);
      assert.equal((await recorded(d, "after")).code, 4);
      assert.match(d.logs, new RegExp(`${signal} received`));
      const status = await d.stop("SIGTERM");
      assert.equal(status.code, 0, d.logs);
    } finally {
      await d.dispose();
    }
  });
}

Deno.test("signals: SIGHUP applies a new log level, names what needs a restart, survives a broken file", async () => {
  const d = await TestDaemon.start();
  try {
    const config = JSON.parse(await Deno.readTextFile(d.configPath));
    await Deno.writeTextFile(
      d.configPath,
      JSON.stringify({ ...config, logLevel: "debug", gc: { ...config.gc, concurrency: 3 } }),
    );
    Deno.kill(d.pid, "SIGHUP");
    await until("reload logged", () => /applied: logLevel/.test(d.logs) ? true : null, 5000);
    assert.match(d.logs, /restart to apply: gc\.concurrency/);
    // Debug lines now appear: every request is logged at debug.
    await d.api("GET", "/v1/health");
    await until("debug line", () => /DEBUG.*GET \/v1\/health 200/.test(d.logs) ? true : null, 5000);

    await Deno.writeTextFile(d.configPath, "{ not json");
    Deno.kill(d.pid, "SIGHUP");
    await until("failure logged", () => /reload failed, keeping/.test(d.logs) ? true : null, 5000);
    const c = await startBareContainer(d, "after-bad");
    await c.exit(6);
    assert.equal((await recorded(d, "after-bad")).code, 6);
  } finally {
    await d.dispose();
  }
});

Deno.test("signals: SIGTERM records every status already waiting in the FIFOs before it stops", async () => {
  const d = await TestDaemon.start();
  const containers = [];
  try {
    for (let i = 0; i < 40; i++) containers.push(await startBareContainer(d, `waiting-${i}`));
    // Stopped, the daemon cannot read: each status waits in its FIFO when SIGTERM comes.
    Deno.kill(d.pid, "SIGSTOP");
    for (const [i, c] of containers.entries()) await c.exit(10 + i);
    Deno.kill(d.pid, "SIGTERM");
    Deno.kill(d.pid, "SIGCONT");
    const status = await d.stop("SIGTERM");
    assert.equal(status.code, 0, d.logs);
    await d.restart();
    for (const [i, c] of containers.entries()) {
      const res = await d.api("GET", `/v1/containers/${c.id}`);
      const exit = (res.body as { exit: { code: number | null; reason: string } | null }).exit;
      assert.deepEqual(
        { id: c.id, code: exit?.code, reason: exit?.reason },
        { id: c.id, code: 10 + i, reason: `exited with code ${10 + i}` },
      );
    }
  } finally {
    for (const c of containers) await c.dispose();
    await d.dispose();
  }
});
