/**
 * Containers registered through the socket API whose init is a pid no process has: enough to
 * fill the store and the event log, nothing for cleanup to signal.
 */
import assert from "node:assert/strict";
import * as libc from "../../src/sys/libc.ts";
import type { TestDaemon } from "./daemon.ts";

/** A pid above pid_max: no process has it. */
export function ghostPid(): number {
  return Number(Deno.readTextFileSync("/proc/sys/kernel/pid_max").trim()) + 1;
}

/** Options of {@linkcode registerGhosts}. */
export interface GhostOptions {
  /** Open and return each exit FIFO's write end, to write a status into (default true). */
  writeEnds?: boolean;
  /** Registrations under way at once (default 1). */
  concurrency?: number;
}

/**
 * Registers `ids` (create-fifo, then monitor) under the runtime `fake`; returns id → the write
 * end of its exit FIFO (non-blocking), when asked for.
 */
export async function registerGhosts(
  d: TestDaemon,
  ids: string[],
  options: GhostOptions = {},
): Promise<Map<string, number>> {
  const pid = ghostPid();
  const fds = new Map<string, number>();
  const one = async (id: string) => {
    const stateDir = `${d.stateRoot}/fake/${id}`;
    const held = await d.api("POST", "/v1/fifos", { stateDir });
    assert.equal(held.status, 200, held.text);
    if (options.writeEnds ?? true) {
      const fifo = (held.body as { fifo: string }).fifo;
      fds.set(id, libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC));
    }
    const res = await d.api("POST", "/v1/containers", {
      id,
      runtime: "fake",
      stateDir,
      pid,
      ppid: pid,
      startTime: 1_000_003,
      pStartTime: 1_000_003,
    });
    assert.equal(res.status, 201, res.text);
  };
  const step = options.concurrency ?? 1;
  for (let i = 0; i < ids.length; i += step) {
    await Promise.all(ids.slice(i, i + step).map(one));
  }
  return fds;
}
