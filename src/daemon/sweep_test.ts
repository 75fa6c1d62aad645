import assert from "node:assert/strict";
import { idProblem, StateLayout } from "../identity.ts";
import type { Logger } from "../log.ts";
import { Store } from "../store/store.ts";
import { isEvent } from "../store/events.ts";
import { withKv, withKvPath } from "../store/_test_util.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord } from "../types.ts";
import { until } from "../../tests/support/poll.ts";
import { StoreUnavailableError } from "../store/errors.ts";
import { ExitPath } from "./exit_path.ts";
import { sweepStateRoot } from "./sweep.ts";

function recordingLog(lines: string[]): Logger {
  const say = (level: string) => (message: string, props?: Record<string, unknown>) =>
    lines.push(`${level} ${message} ${JSON.stringify(props ?? {})}`);
  return { info: say("info"), warn: say("warn"), error: say("error") } as unknown as Logger;
}

async function stateDir(root: string, runtime: string, id: string): Promise<string> {
  const dir = `${root}/${runtime}/${id}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

Deno.test("sweepStateRoot adopts FIFOs with no record, decodes what waits in them, and leaves everything else", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-sweep-" });
  const open: number[] = [];
  try {
    await withKvPath((path) =>
      withKv(path, async (kv) => {
        const store = await Store.open(kv);
        // Held by a shim that has not written yet: watched.
        const held = await stateDir(root, "runc", "held");
        libc.mkfifo(`${held}/exit_fifo`, 0o600);
        open.push(libc.open(`${held}/exit_fifo`, libc.O.RDONLY | libc.O.NONBLOCK));
        open.push(libc.open(`${held}/exit_fifo`, libc.O.WRONLY | libc.O.NONBLOCK));
        // Its shim wrote 9 and left: the status is read.
        const wrote = await stateDir(root, "runc", "wrote");
        libc.mkfifo(`${wrote}/exit_fifo`, 0o600);
        open.push(libc.open(`${wrote}/exit_fifo`, libc.O.RDONLY | libc.O.NONBLOCK));
        const writer = libc.open(`${wrote}/exit_fifo`, libc.O.WRONLY | libc.O.NONBLOCK);
        libc.write(writer, new Uint8Array([9, 0, 0, 0]));
        libc.close(writer);
        // No shim at all: unknown.
        const alone = await stateDir(root, "runc", "alone");
        libc.mkfifo(`${alone}/exit_fifo`, 0o600);
        // Not adopted: a record exists, a file that is not a FIFO, a symlinked dir, a runtime
        // that is not configured, a name that is not an id.
        const known = await stateDir(root, "runc", "known");
        libc.mkfifo(`${known}/exit_fifo`, 0o600);
        await store.register({
          id: "known",
          runtime: "runc",
          stateDir: known,
          pid: 0,
          startTime: 0,
          ppid: 0,
          pStartTime: 0,
        });
        await Deno.writeTextFile(`${await stateDir(root, "runc", "plain")}/exit_fifo`, "");
        await Deno.symlink(alone, `${root}/runc/linked`);
        libc.mkfifo(`${await stateDir(root, "other", "elsewhere")}/exit_fifo`, 0o600);
        libc.mkfifo(`${await stateDir(root, "runc", "-bad")}/exit_fifo`, 0o600);

        const watched: ContainerRecord[] = [];
        const exits: ExitReport[] = [];
        const lines: string[] = [];
        const result = await sweepStateRoot({
          layout: new StateLayout(root),
          runtimes: ["runc"],
          store,
          log: recordingLog(lines),
          watch: (record, _fifo, fd) => {
            watched.push(record);
            libc.close(fd);
          },
          exited: (report) => exits.push(report),
        });
        assert.deepEqual(result.adopted, ["alone", "held", "wrote"]);
        assert.equal(result.watched, 1);
        assert.deepEqual(watched.map((r) => [r.id, r.pid, r.startTime]), [["held", 0, 0]]);
        const byId = new Map(exits.map((r) => [r.id, r]));
        assert.equal(byId.get("wrote")?.exit.code, 9);
        assert.equal(byId.get("wrote")?.exit.known, true);
        assert.equal(byId.get("alone")?.exit.known, false);
        assert.match(byId.get("alone")!.exit.reason, /no shim holds its exit FIFO/);
        for (const report of exits) assert.deepEqual(report.pidInfo.pid, 0);
        assert.deepEqual(result.skipped.map((s) => [s.dir, s.reason]).sort(), [
          [`${root}/runc/-bad`, `not a container id: ${idProblem("-bad")}`],
          [`${root}/runc/linked`, "a symlink where the layout has a directory: not followed"],
        ]);
        for (const id of ["alone", "held", "wrote"]) {
          assert.equal((await store.get(id))?.state, "running");
        }
        assert.equal(await store.get("plain"), null);
        assert.equal(await store.get("linked"), null);
        assert.equal(await store.get("elsewhere"), null);
        const adoptions = (await store.eventsSince(0)).filter(isEvent("adopt"));
        assert.deepEqual(adoptions.map((e) => [e.id, e.detail.stateDir]), [
          ["alone", alone],
          ["held", held],
          ["wrote", wrote],
        ]);
        assert.ok(lines.some((l) => l.startsWith("warn adopted {count}")), lines.join("\n"));
      })
    );
  } finally {
    for (const fd of open) libc.close(fd);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweepStateRoot reads neither the FIFO nor the store for an id known to be recorded", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-sweep-" });
  try {
    await withKvPath((path) =>
      withKv(path, async (kv) => {
        const store = await Store.open(kv);
        for (const id of ["known", "orphan"]) {
          libc.mkfifo(`${await stateDir(root, "runc", id)}/exit_fifo`, 0o600);
        }
        await store.register({
          id: "known",
          runtime: "runc",
          stateDir: `${root}/runc/known`,
          pid: 0,
          startTime: 0,
          ppid: 0,
          pStartTime: 0,
        });
        const asked: string[] = [];
        const counted = {
          get: (id: string) => {
            asked.push(id);
            return store.get(id);
          },
          register: store.register.bind(store),
          recordAdoption: store.recordAdoption.bind(store),
        };
        const exits: ExitReport[] = [];
        const result = await sweepStateRoot({
          layout: new StateLayout(root),
          runtimes: ["runc"],
          store: counted,
          log: recordingLog([]),
          watch: (_record, _fifo, fd) => libc.close(fd),
          exited: (report) => exits.push(report),
          recorded: new Set(["known"]),
        });
        assert.deepEqual(result.adopted, ["orphan"]);
        assert.deepEqual(asked, ["orphan"]);
        assert.deepEqual(exits.map((r) => r.id), ["orphan"]);
        assert.equal((await store.get("known"))?.pid, 0);
      })
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweepStateRoot walks the configured layout and follows no symlink at any level", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-sweep-" });
  const layout = new StateLayout(root, "{stateRoot}/k8s/{runtime}/{id}/bundle");
  const fifoIn = async (dir: string) => {
    await Deno.mkdir(dir, { recursive: true });
    libc.mkfifo(`${dir}/exit_fifo`, 0o600);
  };
  try {
    await withKvPath((path) =>
      withKv(path, async (kv) => {
        const store = await Store.open(kv);
        await fifoIn(layout.dirOf("runc", "a"));
        await fifoIn(layout.dirOf("crun", "b"));
        // Not configured, or not this layout: left alone without a word.
        await fifoIn(layout.dirOf("kata", "k"));
        await fifoIn(`${root}/runc/plain`);
        // Symlinks where the layout has a dir: an id dir, the dir below it.
        await fifoIn(`${root}/elsewhere/bundle`);
        await Deno.symlink(`${root}/elsewhere`, `${root}/k8s/runc/linked`);
        await Deno.mkdir(`${root}/k8s/crun/inner`);
        await Deno.symlink(`${root}/elsewhere/bundle`, `${root}/k8s/crun/inner/bundle`);
        const exits: ExitReport[] = [];
        const sweep = (layout: StateLayout) =>
          sweepStateRoot({
            layout,
            runtimes: ["runc", "crun"],
            store,
            log: recordingLog([]),
            watch: (_record, _fifo, fd) => libc.close(fd),
            exited: (report) => {
              exits.push(report);
              report.acknowledge?.();
            },
          });
        const result = await sweep(layout);
        assert.deepEqual(result.adopted, ["a", "b"]);
        assert.deepEqual(
          [await store.get("a"), await store.get("b")].map((r) => [r?.runtime, r?.stateDir]),
          [["runc", layout.dirOf("runc", "a")], ["crun", layout.dirOf("crun", "b")]],
        );
        assert.deepEqual(exits.map((r) => [r.id, r.runtime]), [["a", "runc"], ["b", "crun"]]);
        const notFollowed = "a symlink where the layout has a directory: not followed";
        assert.deepEqual(result.skipped.map((s) => [s.dir, s.reason]).sort(), [
          [`${root}/k8s/crun/inner/bundle`, notFollowed],
          [`${root}/k8s/runc/linked`, notFollowed],
        ]);
        // A literal component that is a symlink: nothing below it is walked.
        const other = `${root}/other`;
        await Deno.mkdir(other);
        await Deno.symlink(`${root}/k8s`, `${other}/k8s`);
        await fifoIn(layout.dirOf("runc", "c"));
        const viaLink = await sweep(
          new StateLayout(other, "{stateRoot}/k8s/{runtime}/{id}/bundle"),
        );
        assert.deepEqual(viaLink.adopted, []);
        assert.deepEqual(viaLink.skipped, [{ dir: `${other}/k8s`, reason: notFollowed }]);
        assert.equal(await store.get("c"), null);
      })
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweepStateRoot leaves the status it finds in the FIFO until the exit is recorded", async () => {
  const root = await Deno.makeTempDir({ prefix: "reaperd-sweep-" });
  const dir = await stateDir(root, "runc", "wrote");
  const fifo = `${dir}/exit_fifo`;
  libc.mkfifo(fifo, 0o600);
  // Another read end, as the service manager keeps one: the status outlives the daemon's.
  const keeper = libc.open(fifo, libc.O.RDONLY | libc.O.NONBLOCK);
  const shim = libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK);
  libc.write(shim, new Uint8Array([9, 0, 0, 0]));
  libc.close(shim);
  const [copyRead, copyWrite] = libc.pipe();
  /** How many bytes the FIFO holds, left in it. */
  const holds = () => {
    const n = libc.tee(keeper, copyWrite, 64) ?? 0;
    while ((libc.read(copyRead, new Uint8Array(64)) ?? 0) > 0) {
      // Emptied for the next look.
    }
    return n;
  };
  let full = true;
  const lines: string[] = [];
  const done: string[] = [];
  try {
    await withKvPath((path) =>
      withKv(path, async (kv) => {
        const store = await Store.open(kv);
        const exitPath = new ExitPath({
          // A store that cannot take the exit's write now (a full disk).
          store: {
            recordExits: (items) => {
              if (full) throw new StoreUnavailableError("record exits: No space left on device");
              return store.recordExits(items);
            },
          },
          handOver: () => {},
          log: recordingLog(lines),
          retryMs: 20,
        });
        const result = await sweepStateRoot({
          layout: new StateLayout(root),
          runtimes: ["runc"],
          store,
          log: recordingLog(lines),
          done: (f) => done.push(f),
          watch: (_record, _fifo, fd) => libc.close(fd),
          exited: (report) => exitPath.report(report),
        });
        assert.deepEqual(result.adopted, ["wrote"]);
        await until("the exit held in memory", () => exitPath.held === 1 || null);
        assert.equal(holds(), 4, "the status is still in the FIFO");
        assert.deepEqual(done, []);
        assert.equal((await store.get("wrote"))?.state, "running");

        full = false;
        await until("the exit recorded", async () =>
          (await store.get("wrote"))?.state !== "running" || null);
        const recorded = await store.get("wrote");
        assert.deepEqual([recorded?.exit?.known, recorded?.exit?.code], [true, 9]);
        await until("the read end let go", () =>
          done.length === 1 || null);
        assert.deepEqual(done, [fifo]);
        assert.equal(holds(), 0, "consumed once recorded");
        await exitPath.close(1000);
      })
    );
  } finally {
    for (const fd of [keeper, copyRead, copyWrite]) libc.close(fd);
    await Deno.remove(root, { recursive: true });
  }
});
