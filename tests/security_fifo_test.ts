/**
 * Hostile exit FIFOs and state dirs (issue 5): garbage of every shape written into the FIFO
 * of the real daemon (recorded unknown with its reason, never a made-up code, the loop goes
 * on), `exit_fifo` swapped for a symlink to a bait FIFO while the daemon opens it (never
 * followed: the bait's status is never read), the same swap while the daemon is down, and
 * state dirs that are symlinks (refused, nothing created through them).
 */

import assert from "node:assert/strict";
import { encodeExitStatus } from "../src/supervisor/exit_status.ts";
import * as libc from "../src/sys/libc.ts";
import { readProcStat } from "../src/sys/proc.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  allEvents,
  crashRuntime,
  getJson,
  openFds,
  record,
  report,
  sleep,
  startContainer,
  type TestContainer,
  waitFor,
  waitStopped,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const withCc = needs("cc");

const RT = "crt";

/** A process to stand for a container's init: cleanup may kill it, so never the test. */
class Sleepers {
  readonly #all: Deno.ChildProcess[] = [];
  spawn(): { pid: number; startTime: number } {
    const p = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
    this.#all.push(p);
    return { pid: p.pid, startTime: readProcStat(p.pid)!.startTime };
  }
  async dispose(): Promise<void> {
    for (const p of this.#all) {
      try {
        p.kill("SIGKILL");
      } catch {
        // Already killed by cleanup.
      }
      await p.status;
    }
  }
}

function bytes(...values: number[]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(values);
}

function int32(value: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, value, true);
  return b;
}

/** One shape of what a writer may put in the FIFO, and what must be recorded. */
interface Shape {
  name: string;
  /** Writes, in order, with a pause between them; the writer then closes. */
  writes: Uint8Array<ArrayBuffer>[];
  pauseMs?: number;
  /** Writers that connect and leave without writing, before the real one. */
  emptyWritersFirst?: number;
  /** The code to record, or a pattern the unknown reason must match. */
  expect: number | RegExp;
  /** Also fine: unknown with this reason (when timing decides which comes first). */
  orUnknown?: RegExp;
}

const SHAPES: Shape[] = [
  { name: "nothing, then hang-up", writes: [], expect: /no status before hang-up/ },
  { name: "1 byte", writes: [bytes(7)], expect: /short status: 1 of 4/ },
  { name: "2 bytes", writes: [bytes(7, 0)], expect: /short status: 2 of 4/ },
  { name: "3 bytes", writes: [bytes(7, 0, 0)], expect: /short status: 3 of 4/ },
  // More than 4 bytes: the first 4 are the status, what follows is logged.
  { name: "5 bytes", writes: [bytes(7, 0, 0, 0, 9)], expect: 7 },
  { name: "64 bytes", writes: [new Uint8Array(64).fill(0x41)], expect: /outside 0–255.*64 bytes/ },
  {
    name: "256 KiB",
    writes: [new Uint8Array(256 * 1024).fill(0xee)],
    expect: /outside 0–255.*bytes in all/,
  },
  { name: "-1", writes: [int32(-1)], expect: /status value -1 is outside 0–255/ },
  { name: "256", writes: [int32(256)], expect: /status value 256 is outside/ },
  { name: "INT_MAX", writes: [int32(0x7fffffff)], expect: /outside 0–255/ },
  { name: "INT_MIN", writes: [int32(-0x80000000)], expect: /outside 0–255/ },
  {
    name: 'text "137\\n"',
    writes: [new TextEncoder().encode("137\n")],
    expect: /outside 0–255.*text "137\\n"/,
  },
  { name: 'text "0\\n"', writes: [new TextEncoder().encode("0\n")], expect: /short status: 2/ },
  { name: "4 bytes in two writes", writes: [bytes(42, 0), bytes(0, 0)], pauseMs: 150, expect: 42 },
  {
    name: "4 bytes in four writes",
    writes: [bytes(3), bytes(0), bytes(0), bytes(0)],
    pauseMs: 50,
    expect: 3,
  },
  { name: "a valid status, then more", writes: [int32(9), int32(77)], pauseMs: 100, expect: 9 },
  { name: "code 0", writes: [encodeExitStatus(0)], expect: 0 },
  { name: "code 255", writes: [encodeExitStatus(255)], expect: 255 },
  { name: "killed by SIGKILL", writes: [encodeExitStatus(137)], expect: 137 },
  // The empty writer's hang-up decides the exit unless the real writer connects before the
  // daemon sees it; either way nothing is made up.
  {
    name: "an empty writer first",
    writes: [encodeExitStatus(5)],
    emptyWritersFirst: 1,
    expect: 5,
    orUnknown: /no status before hang-up/,
  },
];

/** Opens the write end as a shim does, but without blocking (the daemon holds the read end). */
function openWriter(fifo: string): number {
  return libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC);
}

/** Writes what fits (a full pipe takes no more: the rest is what a garbage writer loses). */
function writeSome(fd: number, data: Uint8Array<ArrayBuffer>): void {
  try {
    libc.write(fd, data);
  } catch {
    // EAGAIN on a full pipe, EPIPE once the daemon has decided and let go.
  }
}

withCc.test("security: FIFO garbage of every shape is recorded unknown with its reason, and the loop goes on", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-fifo-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  const sleepers = new Sleepers();
  let after: TestContainer | undefined;
  try {
    await Promise.all(SHAPES.map(async (shape, i) => {
      const id = `shape${i}`;
      const stateDir = `${daemon.stateRoot}/${RT}/${id}`;
      const held = await daemon.api("POST", "/v1/fifos", { stateDir });
      assert.equal(held.status, 200, held.text);
      const fifo = (held.body as { fifo: string }).fifo;
      for (let n = 0; n < (shape.emptyWritersFirst ?? 0); n++) libc.close(openWriter(fifo));
      const fd = shape.emptyWritersFirst ? -1 : openWriter(fifo);
      const proc = sleepers.spawn();
      const res = await daemon.api("POST", "/v1/containers", {
        id,
        runtime: RT,
        stateDir,
        pid: proc.pid,
        ppid: 0,
        startTime: proc.startTime,
      });
      assert.equal(res.status, 201, res.text);
      // After an empty writer's hang-up the daemon has decided and let go of the FIFO: a late
      // writer finds no reader (ENXIO) and its status is not taken.
      let writer = fd;
      if (writer < 0) {
        try {
          writer = openWriter(fifo);
        } catch {
          return;
        }
      }
      for (const [k, data] of shape.writes.entries()) {
        if (k > 0) await sleep(shape.pauseMs ?? 0);
        writeSome(writer, data);
      }
      libc.close(writer);
    }));
    for (const [i, shape] of SHAPES.entries()) {
      const r = await waitStopped(daemon, `shape${i}`);
      const exit = r.exit!;
      if (shape.orUnknown !== undefined && !exit.known) {
        // Either outcome is allowed here, but an unknown exit never carries a made-up code.
        assert.equal(exit.code, null, shape.name);
        assert.match(exit.reason, shape.orUnknown, shape.name);
      } else if (typeof shape.expect === "number") {
        assert.deepEqual([exit.code, exit.known], [shape.expect, true], shape.name);
      } else {
        assert.equal(exit.known, false, `${shape.name}: ${exit.reason}`);
        assert.equal(exit.code, null, shape.name);
        assert.match(exit.reason, shape.expect, shape.name);
      }
    }
    const events = await allEvents(daemon);
    for (const i of SHAPES.keys()) {
      assert.equal(events.filter((e) => e.id === `shape${i}` && e.kind === "exit").length, 1);
    }
    // The loop is alive and well: a real shim's exit right after is decoded.
    after = await startContainer(daemon, { id: "after", runtime: RT });
    await after.exit(33);
    assert.equal((await waitStopped(daemon, "after")).exit?.code, 33);
    assert.equal((await daemon.api("GET", "/v1/health")).status, 200);
    report(`security fifo-garbage: ${SHAPES.length} shapes, all decided, 0 made-up codes`);
  } finally {
    await stopShim(after?.shim);
    await sleepers.dispose();
    await daemon.dispose();
    await Deno.remove(log);
  }
});

/** A FIFO holding a valid status (42) with a writer keeping it there: what a swap would reveal. */
function bait(dir: string): { path: string; fd: number; stillThere(): boolean; close(): void } {
  const path = `${dir}/bait`;
  libc.mkfifo(path, 0o600);
  const fd = libc.open(path, libc.O.RDWR | libc.O.NONBLOCK | libc.O.CLOEXEC);
  libc.write(fd, encodeExitStatus(42));
  return {
    path,
    fd,
    /** Whether the 4 bytes are still in the pipe (reads them: call it once, at the end). */
    stillThere() {
      const buf = new Uint8Array(8);
      const n = libc.read(fd, buf);
      return n === 4 && new DataView(buf.buffer).getInt32(0, true) === 42;
    },
    close() {
      libc.close(fd);
    },
  };
}

const SWAPPER = `
const [seconds, ...dirs] = Deno.args;
const until = Date.now() + Number(seconds) * 1000;
let swaps = 0;
while (Date.now() < until) {
  for (const dir of dirs) {
    // The real FIFO and a symlink to the bait take turns at exit_fifo, atomically (rename).
    Deno.linkSync(dir + "/real", dir + "/real.next");
    Deno.renameSync(dir + "/real.next", dir + "/exit_fifo");
    Deno.symlinkSync(dir + "/../bait", dir + "/evil.next");
    Deno.renameSync(dir + "/evil.next", dir + "/exit_fifo");
    swaps += 2;
  }
}
console.log(swaps);
`;

// Each container has a state dir of its own; the swapper works on all of them in turn.
const RACERS = 64;

Deno.test("security: exit_fifo swapped for a symlink while the daemon opens it is never followed", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-fifo-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  const sleepers = new Sleepers();
  const dirs = Array.from({ length: RACERS }, (_, i) => `${daemon.stateRoot}/${RT}/race${i}`);
  const realInos = new Set<number | null>();
  for (const dir of dirs) {
    await Deno.mkdir(dir, { recursive: true });
    libc.mkfifo(`${dir}/real`, 0o600);
    realInos.add(Deno.statSync(`${dir}/real`).ino);
  }
  const decoy = bait(`${daemon.stateRoot}/${RT}`);
  let swapper: Deno.ChildProcess | undefined;
  try {
    const baitIno = Deno.statSync(decoy.path).ino;
    swapper = new Deno.Command(Deno.execPath(), {
      args: ["eval", SWAPPER, "4", ...dirs],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const proc = sleepers.spawn();
    let accepted = 0;
    let refused = 0;
    const reasons = new Set<string>();
    // The swapper is a process of its own: the race starts once it has been round every dir.
    await waitFor("the swapper to start", () => {
      try {
        return Deno.lstatSync(`${dirs[RACERS - 1]}/exit_fifo`) !== null;
      } catch {
        return false;
      }
    });
    const deadline = Date.now() + 3_000;
    // Each container is asked for again until it gets in; a refusal writes nothing.
    for (let i = 0; Date.now() < deadline && i < RACERS;) {
      const res = await daemon.api("POST", "/v1/containers", {
        id: `race${i}`,
        runtime: RT,
        stateDir: dirs[i],
        pid: proc.pid,
        ppid: 0,
        startTime: proc.startTime,
      });
      if (res.status === 201) {
        accepted++;
        i++;
      } else {
        assert.equal(res.status, 400, res.text);
        refused++;
        reasons.add((res.body as { error: string }).error.replace(/\/\S+/g, "<path>"));
      }
      // Whatever the daemon holds is the real FIFO, never the bait.
      for (const link of openFds(daemon.pid)) {
        assert.ok(!link.includes("bait"), `the daemon opened the bait: ${link}`);
      }
    }
    const swaps = Number(new TextDecoder().decode((await swapper.output()).stdout).trim());
    swapper = undefined;
    // Every accepted monitor holds a read end, and each of them is the real FIFO.
    let holdingReal = 0;
    for (const entry of [...Deno.readDirSync(`/proc/${daemon.pid}/fd`)]) {
      let ino: number | null = null;
      try {
        ino = Deno.statSync(`/proc/${daemon.pid}/fd/${entry.name}`).ino;
      } catch {
        continue; // Closed meanwhile.
      }
      assert.notEqual(ino, baitIno, "the daemon holds the bait FIFO");
      if (realInos.has(ino)) holdingReal++;
    }
    assert.equal(holdingReal, accepted, "every accepted monitor opened the real FIFO");
    assert.ok(refused > 0 && accepted > 0, `accepted ${accepted}, refused ${refused}: no race`);
    for (const r of reasons) assert.match(r, /symlink|not a FIFO|does not exist/, r);
    assert.ok(decoy.stillThere(), "the bait's status was read");
    const records = await getJson<{ exit: { code: number | null } | null }[]>(
      daemon,
      "/v1/containers",
    );
    assert.ok(records.every((r) => r.exit?.code !== 42), "a record carries the bait's code");
    report(
      `security fifo-swap: ${swaps} swaps, ${accepted + refused} opens raced ` +
        `(${accepted} got the real FIFO, ${refused} refused), bait never read`,
    );
  } finally {
    if (swapper !== undefined) await swapper.output();
    decoy.close();
    await sleepers.dispose();
    await daemon.dispose();
    await Deno.remove(log);
  }
});

withCc.test("security: exit_fifo replaced by a symlink while the daemon is down: unknown, bait untouched", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-fifo-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  let c: TestContainer | undefined;
  const decoy = bait(daemon.dir);
  try {
    c = await startContainer(daemon, { id: "swapped", runtime: RT });
    await daemon.stop("SIGKILL");
    await Deno.remove(`${c.stateDir}/exit_fifo`);
    await Deno.symlink(decoy.path, `${c.stateDir}/exit_fifo`);
    await daemon.restart();
    const r = await waitStopped(daemon, "swapped");
    assert.equal(r.exit?.known, false);
    assert.match(r.exit?.reason ?? "", /exit FIFO unusable after restart: .*symlink/);
    assert.ok(decoy.stillThere(), "the bait's status was read");
    report("security fifo-swap-while-down: 1 swapped FIFO refused on restore, bait never read");
  } finally {
    await stopShim(c?.shim);
    decoy.close();
    await daemon.dispose();
    await Deno.remove(log);
  }
});

Deno.test("security: state dirs that are symlinks are refused and nothing is created through them", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-fifo-", suffix: ".log" });
  const elsewhere = await Deno.makeTempDir({ prefix: "reaperd-sec-elsewhere-" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  const sleepers = new Sleepers();
  try {
    const root = `${daemon.stateRoot}/${RT}`;
    await Deno.mkdir(root, { recursive: true });
    // A state dir that is itself a symlink, and one reached through a symlinked parent.
    await Deno.symlink(elsewhere, `${root}/linked`);
    await Deno.symlink(elsewhere, `${daemon.stateRoot}/lrt`);
    const cases = [`${root}/linked`, `${root}/linked/sub`, `${daemon.stateRoot}/lrt/c1`];
    let refused = 0;
    for (const stateDir of cases) {
      const res = await daemon.api("POST", "/v1/fifos", { stateDir });
      assert.ok(
        res.status >= 400 && res.status < 500,
        `create-fifo ${stateDir}: ${res.status} ${res.text}`,
      );
      refused++;
    }
    assert.deepEqual(
      [...Deno.readDirSync(elsewhere)],
      [],
      "something was created through a symlink",
    );

    // A real FIFO with a writer behind a symlinked state dir: monitor must not arm it.
    libc.mkfifo(`${elsewhere}/exit_fifo`, 0o600);
    const reader = libc.open(
      `${elsewhere}/exit_fifo`,
      libc.O.RDONLY | libc.O.NONBLOCK | libc.O.CLOEXEC,
    );
    const writer = openWriter(`${elsewhere}/exit_fifo`);
    const proc = sleepers.spawn();
    try {
      for (const stateDir of [`${root}/linked`, `${daemon.stateRoot}/lrt`]) {
        const res = await daemon.api("POST", "/v1/containers", {
          id: `viaLink${refused}`,
          runtime: RT,
          stateDir,
          pid: proc.pid,
          ppid: 0,
          startTime: proc.startTime,
        });
        assert.ok(
          res.status >= 400 && res.status < 500,
          `monitor ${stateDir}: ${res.status} ${res.text}`,
        );
        refused++;
      }
    } finally {
      libc.close(writer);
      libc.close(reader);
    }
    assert.deepEqual(await getJson(daemon, "/v1/containers"), []);
    assert.equal(await record(daemon, "viaLink3"), null);
    await waitFor(
      "the daemon to answer",
      async () => (await daemon.api("GET", "/v1/health")).status === 200,
    );
    report(`security state-dir-symlink: ${refused} requests through symlinks refused, 0 created`);
  } finally {
    await sleepers.dispose();
    await daemon.dispose();
    await Deno.remove(elsewhere, { recursive: true });
    await Deno.remove(log);
  }
});
