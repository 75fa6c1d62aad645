import assert from "node:assert/strict";
import type { Logger } from "../log.ts";
import { Store } from "../store/store.ts";
import { isEvent } from "../store/events.ts";
import { withKv, withKvPath } from "../store/_test_util.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import * as libc from "../sys/libc.ts";
import type { ContainerRecord } from "../types.ts";
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
          stateRoot: root,
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
        assert.deepEqual(result.skipped.map((s) => s.dir), [`${root}/runc/-bad`]);
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
          stateRoot: root,
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
