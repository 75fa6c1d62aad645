/**
 * Restore with the fd store: N running containers (each FIFO's write end held by this process,
 * as live shims would), the daemon killed with SIGKILL and started again by the test service
 * manager (tests/support/fd_store_manager.c), once with a store of size 0 (restore reopens every
 * FIFO, as without systemd's store) and once with every read end handed back at fds 3…; and,
 * for reference, started directly without any manager (no `$NOTIFY_SOCKET`), as before.
 * Times spawn → first healthy answer (the socket opens right before READY=1, after restore).
 *
 *   deno run -A bench/restore_fd_store.ts [--containers N] [--restarts R]
 *
 * @module
 */

import { TestDaemon } from "../tests/support/daemon.ts";
import * as libc from "../src/sys/libc.ts";
import { raiseFdLimit } from "../src/sys/fd_limit.ts";
import { identify } from "../src/sys/proc.ts";
import { mapLimit } from "./_stats.ts";

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(Deno.args[i + 1]);
}

const encoder = new TextEncoder();
function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(`${line}\n`));
}

/** Spawn → healthy of each restart, in ms, and what the restarted daemon reported. */
async function measure(storeMax: number | null, containers: number, restarts: number) {
  // Every container names this one process, which nothing here ever ends but the benchmark.
  const sleeper = new Deno.Command("sleep", { args: ["3600"], stdin: "null" }).spawn();
  const me = identify(sleeper.pid)!;
  const daemon = await TestDaemon.start({
    ...(storeMax === null ? {} : { serviceManager: { storeMax } }),
    extra: { heldFifoTimeoutMs: 3_600_000 },
  });
  const writers: number[] = [];
  try {
    const ids = Array.from({ length: containers }, (_, i) => `r${i}`);
    await mapLimit(ids, 8, async (id) => {
      const stateDir = `${daemon.stateRoot}/fake/${id}`;
      const held = await daemon.api("POST", "/v1/fifos", { stateDir });
      if (held.status !== 200) throw new Error(`create-fifo: ${held.text}`);
      writers.push(
        libc.open(`${stateDir}/exit_fifo`, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC),
      );
      const res = await daemon.api("POST", "/v1/containers", {
        id,
        runtime: "fake",
        stateDir,
        pid: me.pid,
        ppid: 0,
        startTime: me.startTime,
      });
      if (res.status !== 201) throw new Error(`monitor: ${res.text}`);
    });
    const times: number[] = [];
    let monitored = 0;
    for (let r = 0; r < restarts; r++) {
      await daemon.stop("SIGKILL");
      const t0 = performance.now();
      await daemon.restart();
      times.push(performance.now() - t0);
      const health = await daemon.api("GET", "/v1/health");
      monitored = (health.body as { monitored: number }).monitored;
    }
    const stored = storeMax === null ? 0 : (await daemon.fdStoreStats()).stored;
    return { times, monitored, stored };
  } finally {
    // The daemon goes first: closing the write ends would make every container exit.
    await daemon.dispose();
    for (const fd of writers) libc.close(fd);
    try {
      sleeper.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await sleeper.status;
  }
}

if (import.meta.main) {
  raiseFdLimit();
  const containers = option("containers", 10_000);
  const restarts = option("restarts", 3);
  for (const storeMax of [null, 0, 32_000]) {
    const { times, monitored, stored } = await measure(storeMax, containers, restarts);
    const label = storeMax === null
      ? "reopened (no service manager)"
      : storeMax === 0
      ? "reopened (manager without fd store)"
      : "handed back (fd store)";
    const sorted = [...times].sort((a, b) => a - b);
    say(
      `${containers} running, read ends ${label}: spawn → healthy ` +
        `${times.map((t) => Math.round(t)).join(", ")} ms (median ${
          Math.round(sorted[Math.floor(sorted.length / 2)]!)
        }); ${monitored} monitored after restart; ${stored} fds in the store`,
    );
  }
}
