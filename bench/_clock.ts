/**
 * One clock for every process of the benchmark: `clock_gettime(CLOCK_REALTIME)` through libc.
 * The writer process (the stand-in shim) and the orchestrator read the same kernel clock, with
 * nanosecond resolution, so a timestamp taken in one can be subtracted from one taken in the
 * other; and the daemon's own timestamps (`Date.now()`, ms) are on the same clock too.
 * `performance.timeOrigin` is not used: each process fixes its own origin at start-up.
 *
 * @module
 */

const CLOCK_REALTIME = 0;

let lib:
  | Deno.DynamicLibrary<{
    clock_gettime: { parameters: ["i32", "buffer"]; result: "i32" };
  }>
  | null = null;
const timespec = new BigInt64Array(2);

/** Milliseconds since the epoch (CLOCK_REALTIME), with sub-microsecond precision. */
export function nowMs(): number {
  lib ??= Deno.dlopen("libc.so.6", {
    clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  });
  if (lib.symbols.clock_gettime(CLOCK_REALTIME, timespec) !== 0) return Date.now();
  return Number(timespec[0]!) * 1000 + Number(timespec[1]!) / 1e6;
}
