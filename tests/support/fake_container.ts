/**
 * Test support: a container the test plays the shim of, against the real daemon. Its init is
 * a live `sleep`; the test holds the exit FIFO's write end and writes the status itself.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeExitStatus } from "../../src/supervisor/exit_status.ts";
import * as libc from "../../src/sys/libc.ts";
import { readProcStat } from "../../src/sys/proc.ts";
import type { TestDaemon } from "./daemon.ts";

/** A container the test plays the shim of. */
export interface FakeContainer {
  id: string;
  /** The container's init. */
  process: Deno.ChildProcess;
  /** The exit FIFO's write end; -1 once closed. */
  writer: number;
}

/** What monitor answered for a {@linkcode FakeContainer}, which exists whatever it said. */
export interface FakeMonitor {
  container: FakeContainer;
  status: number;
  text: string;
}

/**
 * create-fifo under runtime "fake", a `sleep` as the container's init, the write end opened,
 * then monitor, with `extra` added to its body.
 */
export async function monitorFake(
  d: TestDaemon,
  id: string,
  extra: Record<string, unknown> = {},
): Promise<FakeMonitor> {
  const stateDir = `${d.stateRoot}/fake/${id}`;
  const fifo = await d.api("POST", "/v1/fifos", { stateDir });
  assert.equal(fifo.status, 200, fifo.text);
  const process = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
  const writer = libc.open(
    `${stateDir}/exit_fifo`,
    libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC,
  );
  const res = await d.api("POST", "/v1/containers", {
    id,
    runtime: "fake",
    stateDir,
    pid: process.pid,
    startTime: readProcStat(process.pid)!.startTime,
    ppid: 0,
    ...extra,
  });
  return { container: { id, process, writer }, status: res.status, text: res.text };
}

/** {@linkcode monitorFake}, which must be accepted (201). */
export async function startFake(d: TestDaemon, id: string): Promise<FakeContainer> {
  const started = await monitorFake(d, id);
  assert.equal(started.status, 201, started.text);
  return started.container;
}

/** Writes `code` into the FIFO's write end `writer` as the shim does (one native int). */
export function writeExit(writer: number, code: number): void {
  libc.write(writer, encodeExitStatus(code));
}

/** Writes `code` as the shim does and hangs up. */
export function exitWith(container: FakeContainer, code: number): void {
  writeExit(container.writer, code);
  libc.close(container.writer);
  container.writer = -1;
}

/** For `finally`: closes each write end still open, kills each init and waits for it. */
export async function stopAll(containers: FakeContainer[]): Promise<void> {
  for (const c of containers) {
    if (c.writer >= 0) libc.close(c.writer);
    c.writer = -1;
    try {
      c.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await c.process.status;
  }
}

/** A FIFO's write end held as a shim holds it (a reader is needed for the open, then let go). */
export function shimWriter(fifo: string): number {
  const flags = libc.O.NONBLOCK | libc.O.CLOEXEC;
  const reader = libc.open(fifo, libc.O.RDONLY | flags);
  const writer = libc.open(fifo, libc.O.WRONLY | flags);
  libc.close(reader);
  return writer;
}

/**
 * What a crashed host leaves: `stateDir` with its exit FIFO and no record, the FIFO held by a
 * shim still. Returns the write end.
 */
export async function orphanHeldByShim(stateDir: string): Promise<number> {
  await Deno.mkdir(stateDir, { recursive: true });
  libc.mkfifo(`${stateDir}/exit_fifo`, 0o600);
  return shimWriter(`${stateDir}/exit_fifo`);
}
