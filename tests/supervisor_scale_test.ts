/**
 * The supervisor at ten thousand containers, in one process: every FIFO on the one epoll loop,
 * so Deno's 32-thread blocking pool stays free and file I/O keeps answering.
 */
import assert from "node:assert/strict";
import { createExitFifo, openExitFifo } from "../src/supervisor/exit_fifo.ts";
import { type ExitReport, Supervisor } from "../src/supervisor/supervisor.ts";
import { openFdCount, raiseFdLimit } from "../src/sys/fd_limit.ts";
import { identify } from "../src/sys/proc.ts";

const N = 10_000;

/** Open fds that are this test's FIFOs, or epoll/eventfd/pidfds (Deno's own included). */
function ourFds(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      if (target.startsWith(dir) || /^anon_inode:\[(pidfd|eventpoll|eventfd)\]$/.test(target)) n++;
    } catch {
      // Closed while listing.
    }
  }
  return n;
}
const EXITS = 100;

Deno.test("Supervisor watches 10,000 FIFOs, decodes 100 random exits, file I/O stays responsive", async () => {
  assert.ok(raiseFdLimit() >= N + 1000, "the fd limit must fit one fd per container");
  const dir = await Deno.makeTempDir({ prefix: "reaperd-scale-" });
  const reports = new Map<string, ExitReport>();
  let wake: () => void = () => {};
  const fdsBefore = openFdCount();
  const ourFdsBefore = ourFds(dir);
  const supervisor = new Supervisor({
    onExit: (r) => {
      reports.set(r.id, r);
      wake();
    },
  });
  supervisor.start();
  const me = identify(Deno.pid)!;
  const fifos: string[] = [];
  const readEnds: number[] = [];
  let writer: Deno.ChildProcess | null = null;
  try {
    // create-fifo for every container: the read ends are held before the "shims" open theirs.
    for (let i = 0; i < N; i++) {
      const fifo = createExitFifo(`${dir}/c${i}`);
      fifos.push(fifo);
      readEnds.push(openExitFifo(fifo));
    }
    await Deno.writeTextFile(`${dir}/list`, fifos.join("\n"));
    writer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("./support/bulk_writer.ts", import.meta.url).pathname,
        `${dir}/list`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const ready = await writer.stdout.getReader().read();
    assert.equal(new TextDecoder().decode(ready.value), "ready\n");

    const fdsHeld = openFdCount();
    for (let i = 0; i < N; i++) {
      const id = `c${i}`;
      supervisor.add({
        id,
        name: id,
        runtime: "runc",
        fifo: fifos[i]!,
        fd: readEnds[i]!,
        pidInfo: { pid: 1_000_000 + i, startTime: 1, ppid: me.pid, pStartTime: me.startTime },
      });
    }
    assert.equal(supervisor.size, N);
    assert.equal(openFdCount(), fdsHeld, "arming adds no fd: one fd per container in all");

    // With 10,000 FIFOs watched, ordinary file reads still answer at once.
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await Deno.readTextFile("/proc/self/status");
      const took = performance.now() - t0;
      assert.ok(took < 100, `readTextFile took ${took.toFixed(1)} ms`);
    }

    const chosen = new Set<number>();
    while (chosen.size < EXITS) chosen.add(Math.floor(Math.random() * N));
    const expected = new Map<string, number>();
    const stdin = writer.stdin.getWriter();
    for (const i of chosen) expected.set(`c${i}`, i % 256);
    await stdin.write(
      new TextEncoder().encode([...chosen].map((i) => `${i} ${i % 256}\n`).join("")),
    );
    const deadline = Date.now() + 10_000;
    while (reports.size < EXITS && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    for (const [id, code] of expected) {
      const r = reports.get(id);
      assert.ok(r, `exit of ${id} decoded`);
      assert.deepEqual([r.exit.code, r.exit.known], [code, true]);
    }
    assert.equal(reports.size, EXITS);
    assert.equal(supervisor.size, N - EXITS);
    await supervisor.stop();
    await stdin.close();
  } finally {
    await supervisor.stop().catch(() => {});
    if (writer) {
      await writer.stdout.cancel().catch(() => {});
      await writer.stdin.close().catch(() => {});
      await writer.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
  // Deno may open descriptors of its own meanwhile (child process plumbing): count ours.
  assert.equal(ourFds(dir), ourFdsBefore, "stop() released every FIFO, pidfd and epoll fd");
  assert.ok(openFdCount() <= fdsBefore + 2);
});
