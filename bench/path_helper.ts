/**
 * Path helper: what a container path costs when its unmount or removal runs in a helper
 * process, started per path or kept running and fed over a pipe (src/runtime/path_helper.ts).
 * Each op removes one real file. Reports per path: wall time, CPU of the caller's main thread
 * (the daemon's loop) and CPU of the helpers themselves.
 *
 *   deno run --allow-all bench/path_helper.ts [--paths N]
 *
 * @module
 */

import { PathHelperPool } from "../src/runtime/path_helper.ts";

const TICK_MS = 10; // USER_HZ is 100 on Linux
const encoder = new TextEncoder();

function line(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

/** utime+stime of this process's main thread, and cutime+cstime of its reaped children (ms). */
function cpu(): { main: number; children: number } {
  const field = (text: string, i: number) =>
    Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[i - 3]);
  const main = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/stat`);
  const self = Deno.readTextFileSync("/proc/self/stat");
  // Reaped children are in cutime/cstime; running helpers are read one by one.
  let live = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (field(stat, 4) === Deno.pid) live += field(stat, 14) + field(stat, 15);
    } catch {
      // Gone meanwhile.
    }
  }
  return {
    main: (field(main, 14) + field(main, 15)) * TICK_MS,
    children: (field(self, 16) + field(self, 17) + live) * TICK_MS,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function files(dir: string, n: number): Promise<string[]> {
  const paths = Array.from({ length: n }, (_, i) => `${dir}/f${i}`);
  for (const p of paths) await Deno.writeTextFile(p, "x");
  return paths;
}

async function measure(
  label: string,
  paths: string[],
  one: (path: string) => Promise<void>,
  concurrency = 1,
): Promise<void> {
  const times: number[] = [];
  const before = cpu();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < paths.length) {
        const path = paths[next++]!;
        const t = performance.now();
        await one(path);
        times.push(performance.now() - t);
      }
    }),
  );
  const total = performance.now() - started;
  const after = cpu();
  times.sort((a, b) => a - b);
  const n = paths.length;
  line(
    `| ${label} | ${n} | ${(total / n).toFixed(2)} | ${percentile(times, 0.5).toFixed(2)} | ` +
      `${percentile(times, 0.99).toFixed(2)} | ${((after.main - before.main) / n).toFixed(2)} | ` +
      `${((after.children - before.children) / n).toFixed(2)} |`,
  );
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--paths");
  const n = at >= 0 ? Number(Deno.args[at + 1]) : 200;
  const dir = await Deno.makeTempDir({ prefix: "reaperd-bench-paths-" });
  try {
    line(
      "| mode | paths | wall ms/path (throughput) | p50 ms | p99 ms | main-thread CPU ms/path | " +
        "helper CPU ms/path |",
    );
    line("| --- | --- | --- | --- | --- | --- | --- |");
    const check = (ok: boolean, path: string) => {
      if (!ok) throw new Error(`remove ${path} failed`);
    };
    const perPath = await files(dir, Math.max(10, Math.floor(n / 5)));
    await measure("a helper started per path", perPath, async (path) => {
      const pool = new PathHelperPool();
      check((await pool.run({ op: "remove", path }, 30_000)).ok, path);
      await pool.close();
    });
    const pool = new PathHelperPool();
    await pool.run({ op: "remove", path: `${dir}/warm-up` }, 30_000);
    await measure("long-lived helper, one path at a time", await files(dir, n), async (path) => {
      check((await pool.run({ op: "remove", path }, 30_000)).ok, path);
    });
    await measure("long-lived helpers, 8 paths at a time", await files(dir, n), async (path) => {
      check((await pool.run({ op: "remove", path }, 30_000)).ok, path);
    }, 8);
    await pool.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
