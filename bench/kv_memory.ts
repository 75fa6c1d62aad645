/**
 * The memory floor under "RSS per container": Deno KV alone, in a process of its own, writing
 * what a registration writes (a running record and its `monitor` event, one checked commit
 * each) for as many containers as the daemon's level, settled RSS read at the same two points.
 * SQLite keeps the pages it reads and writes in its cache, which grows with the file up to its
 * cap: the daemon's slope holds that growth too, and this row says how much of it there is.
 *
 * Run as a child (`deno run -A --unstable-kv bench/kv_memory.ts <db> <step> <n>`); it prints
 * one JSON line. Drive it with {@linkcode measureKvMemory}.
 *
 * @module
 */

/** What the KV-alone process measured. */
export interface KvMemory {
  /** RSS at `step` and at `n` records, settled (KiB). */
  rssAtStepKiB: number;
  rssAtNKiB: number;
  /** (RSS at n − RSS at step) / (n − step), KiB per container. */
  slopeKiB: number;
}

const SETTLE_MS = 3_000;

function rssKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

/** A record shaped as the daemon writes one for the benchmark's containers. */
function record(i: number, now: number) {
  const id = `c-${i}`;
  return {
    id,
    name: id,
    runtime: "fake",
    stateDir: `/dev/shm/reaperd-bench-0123456789abcdef/state/fake/${id}`,
    mounts: [],
    paths: [],
    pid: 4_194_304,
    startTime: 123_456,
    ppid: 4_194_305,
    pStartTime: 123_457,
    state: "running",
    exit: null,
    createdAt: now,
    updatedAt: now,
  };
}

async function run(db: string, step: number, n: number): Promise<KvMemory> {
  const kv = await Deno.openKv(db);
  let seq = 0;
  const write = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const now = Date.now();
      const r = record(i, now);
      seq++;
      await kv.atomic()
        .check({ key: ["container", r.id], versionstamp: null }, {
          key: ["gc", r.id],
          versionstamp: null,
        })
        .set(["container", r.id], r)
        .check({ key: ["event", seq], versionstamp: null })
        .set(["event", seq], {
          seq,
          kind: "monitor",
          id: r.id,
          name: r.name,
          runtime: r.runtime,
          state: "running",
          at: now,
          detail: {
            pid: r.pid,
            startTime: r.startTime,
            ppid: r.ppid,
            pStartTime: r.pStartTime,
            replaced: false,
          },
        })
        .commit();
    }
  };
  // This process's own garbage is collected before each reading (started with --expose-gc).
  const settle = async () => {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setTimeout(resolve, 500));
  };
  await write(0, step);
  await settle();
  const rssAtStepKiB = rssKiB();
  await write(step, n);
  await settle();
  const rssAtNKiB = rssKiB();
  kv.close();
  return { rssAtStepKiB, rssAtNKiB, slopeKiB: (rssAtNKiB - rssAtStepKiB) / (n - step) };
}

/** Runs the KV-alone process on a db file in `dir`; resolves to what it measured. */
export async function measureKvMemory(dir: string, step: number, n: number): Promise<KvMemory> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-kv",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      `${dir}/kv-memory.db`,
      String(step),
      String(n),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`kv_memory.ts failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(text) as KvMemory;
}

if (import.meta.main) {
  const [db, step, n] = Deno.args;
  const line = JSON.stringify(await run(db!, Number(step), Number(n))) + "\n";
  Deno.stdout.writeSync(new TextEncoder().encode(line));
}
