/**
 * The C floors, built with gcc from `floor.c` in the same run they are measured:
 *
 * - **exit**: the same writer process that stands in for the shims writes exit statuses into
 *   FIFOs a C program holds on one epoll set, at the same pace as the daemon's exits; the C
 *   program reads each status, appends a record to a file and fsyncs it, then prints a line.
 *   Write → line is what an exit costs with nothing but epoll, read and one fsync, on the
 *   filesystem the daemon's store is on: the floor under "exit write → exit event".
 * - **spawn**: `posix_spawn` + `waitpid` of `/bin/true`, one at a time and 8 at once: the
 *   machine's process-creation ceiling, under every cleanup (one or two runtime calls each).
 *
 * @module
 */

import { nowMs } from "./_clock.ts";
import { spawnReady } from "./_ready.ts";
import { summarize, type Summary } from "./_stats.ts";
import type { WriterProcess } from "./_writer.ts";

const SOURCE = new URL("./floor.c", import.meta.url).pathname;

/** What the C floors measured. */
export interface CFloors {
  /** Exit write → its line from the C program (record fsync'ed), ms. */
  exit: Summary;
  /** posix_spawn + waitpid of /bin/true, one at a time, per second. */
  spawnPerSecond: number;
  /** The same, 8 in flight, per second. */
  spawnPerSecond8: number;
}

/** Compiles `floor.c` into `dir`; resolves to the binary's path. */
export async function buildFloor(dir: string): Promise<string> {
  const binary = `${dir}/floor`;
  const out = await new Deno.Command("gcc", {
    args: ["-O2", "-o", binary, SOURCE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`gcc floor.c failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return binary;
}

/**
 * Runs the exit floor: `count` FIFOs, the writer writes one status every `gapMs`. `dir` must
 * be on the store's filesystem.
 */
export async function measureExitFloor(
  binary: string,
  dir: string,
  writer: WriterProcess,
  count: number,
  gapMs: number,
): Promise<Summary> {
  const { child, replies: reply } = await spawnReady(
    "floor exit",
    binary,
    ["exit", dir, String(count)],
    "null",
  );
  const arrived = new Array<number>(count).fill(NaN);
  const reading = (async () => {
    for await (const line of reply) {
      const at = nowMs();
      const [verb, index] = line.split(" ");
      if (verb === "exit") arrived[Number(index)] = at;
    }
  })();
  const fifos = Array.from({ length: count }, (_, i) => `${dir}/fifo-${i}`);
  const indexes = await writer.open(fifos);
  const written = await writer.paced(indexes, gapMs, 7);
  await reading;
  const status = await child.status;
  if (!status.success) throw new Error(`floor exit failed: ${status.code}`);
  return summarize(written.map((w, i) => arrived[i]! - w));
}

/** Runs the spawn floor: `count` runs of /bin/true, `inFlight` at once; per second. */
export async function measureSpawnFloor(
  binary: string,
  count: number,
  inFlight: number,
): Promise<number> {
  const out = await new Deno.Command(binary, {
    args: ["spawn", String(count), String(inFlight)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const m = text.match(/^spawn (\S+)$/);
  if (!out.success || m === null) throw new Error(`floor spawn failed: ${text}`);
  return Number(m[1]);
}
