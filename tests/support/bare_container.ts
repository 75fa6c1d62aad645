/**
 * Test support: a container without a shim. Its "init" is a `sleep` child of the test, its
 * exit FIFO is created through the daemon (which holds the read end), and the test holds the
 * write end the way a shim does, so that {@linkcode BareContainer.exit} delivers a status at
 * the moment the test chooses.
 *
 * @module
 */

import { encodeExitStatus } from "../../src/supervisor/exit_status.ts";
import * as libc from "../../src/sys/libc.ts";
import { readProcStat } from "../../src/sys/proc.ts";
import type { TestDaemon } from "./daemon.ts";

/** A registered container whose exit the test writes. */
export interface BareContainer {
  id: string;
  stateDir: string;
  /** The `sleep` standing in for the container's init. */
  pid: number;
  /** Writes `code` as the shim does (4 bytes), closes the write end, ends the `sleep`. */
  exit(code: number): Promise<void>;
  /** Closes what is still open and ends the `sleep` (idempotent). */
  dispose(): Promise<void>;
}

/** create-fifo, open the write end, monitor: the container is `running` when this resolves. */
export async function startBareContainer(
  daemon: TestDaemon,
  id: string,
  runtime = "fake",
): Promise<BareContainer> {
  const stateDir = `${daemon.stateRoot}/${runtime}/${id}`;
  const held = await daemon.api("POST", "/v1/fifos", { stateDir });
  if (held.status !== 200) throw new Error(`create-fifo ${id}: ${held.status} ${held.text}`);
  const fifo = (held.body as { fifo: string }).fifo;
  let fd = libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC);
  const sleeper = new Deno.Command("sleep", { args: ["1000"], stdin: "null", stdout: "null" })
    .spawn();
  const stat = readProcStat(sleeper.pid);
  if (stat === null) throw new Error(`sleep ${sleeper.pid} vanished`);
  const res = await daemon.api("POST", "/v1/containers", {
    id,
    runtime,
    stateDir,
    pid: sleeper.pid,
    ppid: 0,
    startTime: stat.startTime,
  });
  if (res.status !== 201) throw new Error(`monitor ${id}: ${res.status} ${res.text}`);
  const end = async () => {
    if (fd >= 0) libc.close(fd);
    fd = -1;
    try {
      sleeper.kill("SIGKILL");
    } catch {
      // Already ended (cleanup kills it).
    }
    await sleeper.status;
  };
  return {
    id,
    stateDir,
    pid: sleeper.pid,
    async exit(code) {
      libc.write(fd, encodeExitStatus(code));
      await end();
    },
    dispose: end,
  };
}
