import assert from "node:assert/strict";
import { openFdCount } from "../sys/fd_limit.ts";
import * as libc from "../sys/libc.ts";
import { identify } from "../sys/proc.ts";
import type { PidInfo } from "../types.ts";
import { startWriter, type WriterMode } from "./_test_writer.ts";
import { createExitFifo, openExitFifo } from "./exit_fifo.ts";
import { encodeExitStatus } from "./exit_status.ts";
import { type ExitReport, Supervisor } from "./supervisor.ts";

/** A supervisor whose reports can be awaited by container id. */
class Harness {
  readonly reports: ExitReport[] = [];
  readonly errors: unknown[] = [];
  /** FIFOs whose read end the supervisor said it is done with. */
  readonly done: string[] = [];
  readonly #waiters = new Map<string, (r: ExitReport) => void>();
  readonly supervisor: Supervisor;

  /** @param acknowledge whether each report is acknowledged at once (as a daemon whose store
   *   commits instantly would) */
  constructor(graceMs = 300, acknowledge = true) {
    this.supervisor = new Supervisor({
      onExit: (r) => {
        this.reports.push(r);
        if (acknowledge) r.acknowledge?.();
        this.#waiters.get(r.id)?.(r);
      },
      onError: (e) => this.errors.push(e),
      onDone: (fifo) => this.done.push(fifo),
      processGoneGraceMs: graceMs,
    });
    this.supervisor.start();
  }

  exitOf(id: string, timeoutMs = 5000): Promise<ExitReport> {
    const done = this.reports.find((r) => r.id === id);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no exit for ${id}`)), timeoutMs);
      this.#waiters.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  /** Creates `<dir>/<id>` and watches it as container `id`; returns the FIFO's path. */
  watch(dir: string, id: string, pidInfo: PidInfo): string {
    const fifo = createExitFifo(`${dir}/${id}`);
    this.watchFifo(fifo, id, pidInfo);
    return fifo;
  }

  /** Watches the FIFO `fifo` as container `id`, through a read end of its own. */
  watchFifo(fifo: string, id: string, pidInfo: PidInfo = selfAsShim()): void {
    this.supervisor.add({ id, name: id, runtime: "runc", fifo, fd: openExitFifo(fifo), pidInfo });
  }
}

/** A write end of `fifo` held by this process, as a shim holds it (ENXIO without a reader). */
function openWriteEnd(fifo: string): number {
  return libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The test process itself stands in for a shim that stays alive for the whole test. */
function selfAsShim(): PidInfo {
  const me = identify(Deno.pid)!;
  return { pid: me.pid, startTime: me.startTime, ppid: me.pid, pStartTime: me.startTime };
}

async function withSupervisor(
  fn: (h: Harness, dir: string) => Promise<void>,
  graceMs?: number,
  acknowledge?: boolean,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-sup-" });
  const h = new Harness(graceMs, acknowledge);
  try {
    await fn(h, dir);
  } finally {
    await h.supervisor.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.deepEqual(h.errors, []);
}

async function runWriter(h: Harness, dir: string, id: string, mode: WriterMode) {
  const fifo = h.watch(dir, id, selfAsShim());
  const writer = startWriter(fifo, mode);
  const report = await h.exitOf(id);
  await writer.status;
  return report;
}

Deno.test("Supervisor decodes exit codes 0, 7, 255 written by real writer processes", async () => {
  await withSupervisor(async (h, dir) => {
    for (const code of [0, 7, 255]) {
      const { exit } = await runWriter(h, dir, `c${code}`, { exit: code });
      assert.deepEqual([exit.code, exit.signal, exit.known], [code, null, true]);
      assert.equal(exit.reason, `exited with code ${code}`);
    }
    assert.equal(h.supervisor.size, 0);
  });
});

Deno.test("Supervisor decodes children killed by SIGKILL (137) and SIGTERM (143)", async () => {
  await withSupervisor(async (h, dir) => {
    const killed = await runWriter(h, dir, "killed", { signal: "KILL" });
    assert.deepEqual([killed.exit.code, killed.exit.signal], [137, 9]);
    assert.match(killed.exit.reason, /SIGKILL/);
    const termed = await runWriter(h, dir, "termed", { signal: "TERM" });
    assert.deepEqual([termed.exit.code, termed.exit.signal], [143, 15]);
  });
});

Deno.test("Supervisor records unknown exits for garbage and keeps decoding the next one", async () => {
  await withSupervisor(async (h, dir) => {
    const none = await runWriter(h, dir, "none", { none: true });
    assert.equal(none.exit.known, false);
    assert.match(none.exit.reason, /no status before hang-up/);

    const short = await runWriter(h, dir, "short", { raw: "\\001\\002" });
    assert.match(short.exit.reason, /short status: 2 of 4 bytes/);

    const long = await runWriter(h, dir, "long", {
      raw: "\\003\\000\\000\\000\\003\\000\\000\\000",
    });
    // Two statuses (two writers on one FIFO): the first complete one is the exit.
    assert.deepEqual([long.exit.code, long.exit.known], [3, true]);

    const text = await runWriter(h, dir, "text", { raw: "137\\n" });
    assert.equal(text.exit.known, false);
    assert.match(text.exit.reason, /text "137\\n"/);

    const next = await runWriter(h, dir, "next", { exit: 42 });
    assert.deepEqual([next.exit.code, next.exit.known], [42, true]);
  });
});

Deno.test("Supervisor sees a status written before the FIFO was armed", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = createExitFifo(`${dir}/early`);
    const fd = openExitFifo(fifo);
    const writer = startWriter(fifo, { exit: 9 });
    assert.equal((await writer.status).code, 0);
    h.supervisor.add({
      id: "early",
      name: "early",
      runtime: "runc",
      fifo,
      fd,
      pidInfo: selfAsShim(),
    });
    const { exit } = await h.exitOf("early");
    assert.equal(exit.code, 9);
  });
});

Deno.test("Supervisor reports an exit once per (id, pid, start time)", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = h.watch(dir, "once", selfAsShim());
    // Arming the same container twice is a no-op; its extra fd is closed.
    h.watchFifo(fifo, "once");
    assert.equal(h.supervisor.size, 1);
    await startWriter(fifo, { exit: 1 }).status;
    await h.exitOf("once");
    assert.throws(
      () => h.watchFifo(fifo, "once"),
      /already reported/,
    );
    assert.equal(h.reports.filter((r) => r.id === "once").length, 1);
  });
});

Deno.test("Supervisor decides unknown when the shim dies without ever opening the FIFO", async () => {
  await withSupervisor(async (h, dir) => {
    const shim = new Deno.Command("sleep", { args: ["0.2"] }).spawn();
    const id = identify(shim.pid)!;
    h.watch(dir, "nowriter", {
      pid: id.pid,
      startTime: id.startTime,
      ppid: id.pid,
      pStartTime: id.startTime,
    });
    await shim.status;
    const { exit } = await h.exitOf("nowriter");
    assert.equal(exit.known, false);
    assert.match(exit.reason, /shim \(pid \d+\) exited without writing a status/);
  }, 100);
});

Deno.test("Supervisor holds no more fds after 1,000 monitor-and-exit cycles", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = createExitFifo(`${dir}/cycle`);
    const cycle = async (i: number) => {
      const id = `cycle-${i}`;
      h.supervisor.add({
        id,
        name: id,
        runtime: "runc",
        fifo,
        fd: openExitFifo(fifo),
        pidInfo: { ...selfAsShim(), pid: 100_000 + i },
      });
      const w = openWriteEnd(fifo);
      libc.write(w, encodeExitStatus(i % 256));
      libc.close(w);
      const r = await h.exitOf(id);
      assert.equal(r.exit.code, i % 256);
    };
    await cycle(1000);
    const before = openFdCount();
    for (let i = 0; i < 1000; i++) await cycle(i);
    assert.equal(openFdCount(), before);
    assert.equal(h.reports.length, 1001);
  });
});

Deno.test("Supervisor decides at once, with the given reason, for a restored container already gone", async () => {
  await withSupervisor(async (h, dir) => {
    const shim = new Deno.Command("true").spawn();
    const id = identify(shim.pid)!;
    await shim.status;
    const fifo = createExitFifo(`${dir}/restored`);
    const t0 = Date.now();
    h.supervisor.add({
      id: "restored",
      name: "restored",
      runtime: "runc",
      fifo,
      fd: openExitFifo(fifo),
      pidInfo: { pid: id.pid, startTime: id.startTime, ppid: id.pid, pStartTime: id.startTime },
      goneReason: "exited while reaperd was down",
    });
    const { exit } = await h.exitOf("restored");
    assert.ok(Date.now() - t0 < 250, "no grace period for a restored container");
    assert.deepEqual([exit.known, exit.reason], [false, "exited while reaperd was down"]);
  }, 5000);
});

/** Bytes waiting in a FIFO now, read (and so consumed) through a fresh read end. */
function drainFifo(fifo: string): number[] {
  const fd = openExitFifo(fifo);
  const buf = new Uint8Array(64);
  const out: number[] = [];
  try {
    for (;;) {
      const n = libc.read(fd, buf);
      if (n === null || n === 0) return out;
      out.push(...buf.subarray(0, n));
    }
  } finally {
    libc.close(fd);
  }
}

Deno.test("Supervisor leaves a reported status in the FIFO until the report is acknowledged", async () => {
  await withSupervisor(
    async (h, dir) => {
      const fifo = createExitFifo(`${dir}/kept`);
      // A second read end, as the service manager's copy would be: it keeps the pipe alive.
      const keeper = openExitFifo(fifo);
      try {
        h.watchFifo(fifo, "kept");
        await startWriter(fifo, { exit: 77 }).status;
        const report = await h.exitOf("kept");
        assert.equal(report.exit.code, 77);
        assert.equal(h.supervisor.awaitingAcknowledgement, 1);
        assert.deepEqual(h.done, []);

        // A daemon killed now: the next one decodes the very same status from the FIFO.
        const next = new Harness(300, false);
        try {
          next.watchFifo(fifo, "kept");
          assert.equal((await next.exitOf("kept")).exit.code, 77);
        } finally {
          await next.supervisor.stop();
        }
        assert.deepEqual(next.done, [], "stopping consumes nothing and is not done");

        report.acknowledge!();
        report.acknowledge!();
        assert.equal(h.supervisor.awaitingAcknowledgement, 0);
        assert.deepEqual(h.done, [fifo]);
        const leftover = new Uint8Array(8);
        assert.equal(libc.read(keeper, leftover), 0, "the status was consumed after the ack");
      } finally {
        libc.close(keeper);
      }
    },
    300,
    false,
  );
});

Deno.test("Supervisor consumes what a second writer added after the first status", async () => {
  await withSupervisor(
    async (h, dir) => {
      const fifo = createExitFifo(`${dir}/two`);
      const keeper = openExitFifo(fifo);
      try {
        h.watchFifo(fifo, "two");
        const first = openWriteEnd(fifo);
        const second = openWriteEnd(fifo);
        libc.write(first, encodeExitStatus(5));
        const report = await h.exitOf("two");
        libc.write(second, encodeExitStatus(6));
        libc.close(first);
        libc.close(second);
        assert.deepEqual([report.exit.code, report.exit.known], [5, true]);
        report.acknowledge!();
        assert.deepEqual(drainFifo(fifo), [], "both statuses were read out");
        assert.deepEqual(h.done, [fifo]);
      } finally {
        libc.close(keeper);
      }
    },
    300,
    false,
  );
});

Deno.test("Supervisor waits for the rest of a status written in pieces, without consuming", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = h.watch(dir, "pieces", selfAsShim());
    const w = openWriteEnd(fifo);
    try {
      const status = encodeExitStatus(201);
      libc.write(w, status.slice(0, 2));
      await sleep(120);
      assert.equal(h.reports.length, 0, "two bytes are not a status yet");
      libc.write(w, status.slice(2));
      const report = await h.exitOf("pieces");
      assert.deepEqual([report.exit.code, report.exit.known], [201, true]);
    } finally {
      libc.close(w);
    }
  });
});

Deno.test("Supervisor does not poll a FIFO that holds part of a status while its writer lives", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = h.watch(dir, "stalled", selfAsShim());
    const w = openWriteEnd(fifo);
    try {
      const status = encodeExitStatus(9);
      libc.write(w, status.slice(0, 1));
      await sleep(50);
      const turns = h.supervisor.loopTurns;
      await sleep(300);
      assert.ok(
        h.supervisor.loopTurns - turns <= 1,
        `the loop turned ${h.supervisor.loopTurns - turns} times for one stalled byte`,
      );
      assert.equal(h.reports.length, 0);
      libc.write(w, status.slice(1));
      const report = await h.exitOf("stalled");
      assert.deepEqual([report.exit.code, report.exit.known], [9, true]);
    } finally {
      libc.close(w);
    }
  });
});

Deno.test("Supervisor decides unknown at once when a writer closes after part of a status", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = h.watch(dir, "cut", selfAsShim());
    const w = openWriteEnd(fifo);
    libc.write(w, encodeExitStatus(9).slice(0, 2));
    await sleep(50);
    assert.equal(h.reports.length, 0);
    libc.close(w);
    const report = await h.exitOf("cut", 250);
    assert.equal(report.exit.known, false);
  }, 5000);
});

Deno.test("Supervisor says a read end is done with on remove, never on stop", async () => {
  await withSupervisor(async (h, dir) => {
    const removed = h.watch(dir, "removed", selfAsShim());
    h.watch(dir, "stopped", selfAsShim());
    assert.ok(h.supervisor.remove("removed"));
    assert.deepEqual(h.done, [removed]);
    await h.supervisor.stop();
    assert.deepEqual(h.done, [removed]);
  });
});

Deno.test("Supervisor.remove lets go of a reported exit never acknowledged", async () => {
  await withSupervisor(
    async (h, dir) => {
      const fifo = h.watch(dir, "refused", selfAsShim());
      await startWriter(fifo, { exit: 3 }).status;
      const report = await h.exitOf("refused");
      assert.equal(h.supervisor.awaitingAcknowledgement, 1);
      // The daemon could not record it (refused) and the container is removed.
      assert.ok(h.supervisor.remove("refused"));
      assert.equal(h.supervisor.awaitingAcknowledgement, 0);
      assert.deepEqual(h.done, [fifo]);
      assert.throws(
        () => openWriteEnd(fifo),
        /ENXIO|No such device/,
        "no read end is left open on the FIFO",
      );
      report.acknowledge!();
      assert.deepEqual(h.done, [fifo], "a late acknowledgement does nothing more");
      assert.equal(h.supervisor.remove("refused"), false);
    },
    300,
    false,
  );
});

Deno.test("Supervisor.stop reports a status already waiting in a FIFO the loop has not turned to", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-sup-" });
  const h = new Harness(300, false);
  try {
    const fifo = h.watch(dir, "waiting", selfAsShim());
    const writer = openWriteEnd(fifo);
    libc.write(writer, encodeExitStatus(7));
    libc.close(writer);
    // No await since the write: the loop cannot have dispatched it.
    await h.supervisor.stop();
    assert.deepEqual(h.reports.map((r) => [r.id, r.exit.code]), [["waiting", 7]]);
  } finally {
    await h.supervisor.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assert.deepEqual(h.errors, []);
});

Deno.test("Supervisor opens no process watch for a FIFO whose writer comes soon after it is armed", async () => {
  await withSupervisor(async (h, dir) => {
    const fifo = `${dir}/late/exit_fifo`;
    const before = openFdCount();
    // Armed before the shim opened the write end (one-call registration): its own read end only.
    h.watch(dir, "late", selfAsShim());
    assert.equal(openFdCount(), before + 1);
    const w = openWriteEnd(fifo);
    await sleep(800);
    // The writer came before the process watch was due: still one descriptor.
    assert.equal(openFdCount(), before + 2, "the read end and the test's write end");
    libc.write(w, encodeExitStatus(3));
    libc.close(w);
    assert.equal((await h.exitOf("late")).exit.code, 3);
  });
});
