/**
 * The floors under reaperd's numbers on this machine, measured in the same run without the
 * daemon: what one durable Deno KV commit costs on the disk the store lives on, and how many
 * helper processes (`/bin/true`, the instant runtime) reaperd's runner (`runCommand`:
 * `posix_spawnp`, pidfd, piped output) can start, wait for and read per second, beside
 * `Deno.Command` doing the same. An exit that is recorded with its own commit cannot beat the
 * first; a cleanup that calls the runtime twice cannot beat half the second.
 *
 * @module
 */

import { nowMs } from "./_clock.ts";
import { mapLimit, summarize, type Summary } from "./_stats.ts";
import { runCommand } from "../src/sys/command.ts";

/** What {@linkcode measureCeilings} found. */
export interface Ceilings {
  /** One `getMany` + `atomic().check().set().commit()` at a time, a few ms apart (ms). */
  kvTransition: Summary;
  /** The same, back to back: transitions per second. */
  kvTransitionsPerSecond: number;
  /** `runCommand(["/bin/true"])` one at a time, per second. */
  spawnsPerSecond: number;
  /** The same with 8 in flight (the GC's default concurrency), per second. */
  spawnsPerSecond8: number;
  /** `new Deno.Command("/bin/true").output()` with 8 in flight, per second. */
  denoCommandPerSecond8: number;
}

/** Measures the floors; `dir` is where the scratch KV file goes (the store's filesystem). */
export async function measureCeilings(dir: string): Promise<Ceilings> {
  const path = `${dir}/ceiling.db`;
  const kv = await Deno.openKv(path);
  const value = { pad: "x".repeat(400) };
  const transition = async (i: number) => {
    const [a, b] = await kv.getMany([["r", i], ["g", i]]);
    const r = await kv.atomic().check(a, b).set(["r", i], value).set(["e", i], value).commit();
    if (!r.ok) throw new Error("ceiling: check failed");
  };
  const spaced: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const t = nowMs();
      await transition(i);
      spaced.push(nowMs() - t);
      await new Promise((r) => setTimeout(r, 3));
    }
    const t = nowMs();
    for (let i = 200; i < 700; i++) await transition(i);
    const kvTransitionsPerSecond = 500 / ((nowMs() - t) / 1000);

    const spawn = async () => {
      const r = await runCommand(["/bin/true"], { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`ceiling: /bin/true failed: ${r.error ?? r.code}`);
    };
    const denoCommand = () =>
      new Deno.Command("/bin/true", { stdout: "piped", stderr: "piped" }).output();
    const perSecond = async (count: number, inFlight: number, run: () => Promise<unknown>) => {
      const s = nowMs();
      await mapLimit(Array.from({ length: count }), inFlight, run);
      return count / ((nowMs() - s) / 1000);
    };
    return {
      kvTransition: summarize(spaced),
      kvTransitionsPerSecond,
      spawnsPerSecond: await perSecond(300, 1, spawn),
      spawnsPerSecond8: await perSecond(400, 8, spawn),
      denoCommandPerSecond8: await perSecond(400, 8, denoCommand),
    };
  } finally {
    kv.close();
    for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(path + suffix).catch(() => {});
  }
}
