import assert from "node:assert/strict";
import { configureLogging, getLogger, resetLogging } from "../log.ts";
import { StoreUnavailableError } from "../store/errors.ts";
import type { ExitInput, ExitRecordResult, Store } from "../store/store.ts";
import { Store as RealStore } from "../store/store.ts";
import { exitWith, registration, withKv, withKvPath } from "../store/_test_util.ts";
import type { ExitReport } from "../supervisor/supervisor.ts";
import type { ContainerRecord } from "../types.ts";
import { ExitPath, type ExitPathEvent } from "./exit_path.ts";

/** A real store whose writes can be made to fail, and that refuses ids starting "big". */
class Faulty implements Pick<Store, "recordExits" | "recordExitLost" | "lostExits"> {
  unavailable = false;
  /** Whether a lost exit cannot be recorded either. */
  lostUnavailable = false;
  /** Ids the store answers "unavailable" for, as after a commit that failed mid-batch. */
  readonly unavailableIds = new Set<string>();
  /** Writes tried, failed ones included. */
  tries = 0;
  constructor(readonly store: RealStore) {}
  async recordExits(items: readonly ExitInput[]): Promise<ExitRecordResult[]> {
    this.tries++;
    if (this.unavailable) throw new StoreUnavailableError("record exits: No space left on device");
    const taken = (i: ExitInput) => !i.id.startsWith("big") && !this.unavailableIds.has(i.id);
    const written = await this.store.recordExits(items.filter(taken));
    return items.map((i): ExitRecordResult =>
      i.id.startsWith("big")
        ? { outcome: "refused", reason: "the record cannot grow by its exit" }
        : this.unavailableIds.has(i.id)
        ? { outcome: "unavailable", reason: "record exits: database is locked" }
        : written.shift()!
    );
  }
  recordExitLost(item: ExitInput, reason: string): Promise<boolean> {
    if (this.lostUnavailable) {
      return Promise.reject(new StoreUnavailableError("record lost exit: database is locked"));
    }
    return this.store.recordExitLost(item, reason);
  }
  lostExits() {
    return this.store.lostExits();
  }
}

function report(id: string, code: number, acks: string[]): ExitReport {
  return {
    id,
    name: id,
    runtime: "runc",
    fifo: `/run/test/runc/${id}/exit_fifo`,
    pidInfo: { pid: 100, startTime: 1000, ppid: 99, pStartTime: 990 },
    exit: exitWith(code, Date.now()),
    acknowledge: () => acks.push(id),
  };
}

async function withExitPath(
  fn: (
    parts: {
      store: RealStore;
      faulty: Faulty;
      path: ExitPath;
      handed: ContainerRecord[];
      events: ExitPathEvent[];
      acks: string[];
      lines: string[];
    },
  ) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  configureLogging({ level: "info", journal: true, write: (line) => lines.push(line) });
  try {
    await withKvPath((file) =>
      withKv(file, async (kv) => {
        const store = await RealStore.open(kv);
        const faulty = new Faulty(store);
        const handed: ContainerRecord[] = [];
        const events: ExitPathEvent[] = [];
        const path = new ExitPath({
          store: faulty,
          handOver: (record) => handed.push(record),
          log: getLogger("exit"),
          retryMs: 50,
          onEvent: (e) => events.push(e),
        });
        await fn({ store, faulty, path, handed, events, acks: [], lines });
      })
    );
  } finally {
    resetLogging();
  }
}

async function until(what: string, predicate: () => boolean): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("ExitPath records a burst, acknowledges each, and hands over the record the store wrote", async () => {
  await withExitPath(async ({ store, path, handed, events, acks }) => {
    for (let i = 0; i < 50; i++) await store.register(registration(`c${i}`));
    for (let i = 0; i < 50; i++) path.report(report(`c${i}`, i, acks));
    await until("every exit", () => handed.length === 50);
    assert.equal(acks.length, 50);
    for (const record of handed) {
      assert.equal(record.state, "stopping");
      assert.deepEqual(record, await store.get(record.id));
    }
    assert.equal(events.filter((e) => e.type === "recorded").length, 50);
    assert.deepEqual(path.problems(), []);
    assert.equal(await path.close(100), 0);
  });
});

Deno.test("ExitPath: a refused exit is logged as an error, shown on health, recorded lost, then acknowledged; a restart takes it again without a word", async () => {
  await withExitPath(async ({ store, faulty, path, handed, events, acks, lines }) => {
    await store.register(registration("big-1"));
    await store.register(registration("ok-1"));
    path.report(report("big-1", 3, acks));
    path.report(report("ok-1", 4, acks));
    await until("both acknowledged", () => acks.length === 2);
    assert.deepEqual(acks.toSorted(), ["big-1", "ok-1"]);
    assert.deepEqual(handed.map((r) => r.id), ["ok-1"]);
    assert.equal(events.length, 2);
    const refusal = "exit of big-1 refused by the store: the record cannot grow by its exit";
    assert.deepEqual(path.problems(), [refusal]);
    const logged = () =>
      lines.filter((l) => l.startsWith("<3>") && l.includes("exit of big-1 could not be"));
    assert.equal(logged().length, 1);
    assert.equal((await store.get("big-1"))?.state, "running", "the record is left as it is");
    const lost = (await store.eventsSince(0)).filter((e) => e.kind === "exit-lost");
    assert.deepEqual(lost.map((e) => [e.id, e.state]), [["big-1", "running"]]);
    assert.deepEqual((await store.lostExits()).map((l) => [l.id, l.exit.code]), [["big-1", 3]]);
    await path.close(100);

    // The next start: the same run reported again (found running, its process gone).
    const again = new ExitPath({
      store: faulty,
      handOver: (record) => handed.push(record),
      log: getLogger("exit"),
    });
    const later: string[] = [];
    again.report(report("big-1", 9, later));
    await until("acknowledged", () => later.length === 1);
    assert.equal(logged().length, 1, "not logged again");
    assert.deepEqual(again.problems(), [refusal], "health still says it was lost");
    assert.equal((await store.eventsSince(0)).filter((e) => e.kind === "exit-lost").length, 1);
    await again.close(100);
  });
});

Deno.test("ExitPath: a refused exit whose loss cannot be recorded keeps its status for the next start", async () => {
  await withExitPath(async ({ store, faulty, path, events, acks, lines }) => {
    await store.register(registration("big-1"));
    faulty.lostUnavailable = true;
    path.report(report("big-1", 3, acks));
    await until("the refusal", () => events.length === 1);
    await until("the warning", () => lines.some((l) => l.includes("its loss could not be")));
    assert.deepEqual(acks, [], "not acknowledged: the next start finds the status again");
    assert.deepEqual(await store.lostExits(), []);
    await path.close(100);
  });
});

Deno.test("ExitPath holds exits the store cannot take, says so, and records them once it can", async () => {
  await withExitPath(async ({ store, faulty, path, handed, acks }) => {
    await store.register(registration("c1"));
    await store.register(registration("c2"));
    faulty.unavailable = true;
    path.report(report("c1", 7, acks));
    path.report(report("c2", 8, acks));
    await until("both held", () => path.held === 2);
    assert.deepEqual(acks, []);
    assert.deepEqual(path.problems(), [
      "2 exits held in memory, not recorded: store: record exits: No space left on device",
    ]);
    faulty.unavailable = false;
    await until("both recorded", () => handed.length === 2);
    assert.deepEqual(path.problems(), []);
    assert.deepEqual((await store.get("c1"))?.exit?.code, 7);
    await path.close(100);
  });
});

Deno.test("ExitPath holds an exit the store left unavailable beside committed ones, and records it once it can", async () => {
  await withExitPath(async ({ store, faulty, path, handed, acks }) => {
    await store.register(registration("c1"));
    await store.register(registration("c2"));
    faulty.unavailableIds.add("c2");
    path.report(report("c1", 7, acks));
    path.report(report("c2", 8, acks));
    await until("c1 recorded, c2 held", () => handed.length === 1 && path.held === 1);
    assert.deepEqual(acks, ["c1"]);
    assert.equal((await store.get("c2"))?.state, "running");
    faulty.unavailableIds.clear();
    await until("c2 recorded", () => handed.length === 2);
    assert.deepEqual(acks, ["c1", "c2"]);
    assert.equal((await store.get("c2"))?.exit?.code, 8);
    assert.deepEqual(path.problems(), []);
    await path.close(100);
  });
});

Deno.test("ExitPath.close() writes held exits within its grace, and logs each one it could not", async () => {
  await withExitPath(async ({ store, faulty, path, handed, acks }) => {
    for (const id of ["a", "b", "c"]) await store.register(registration(id));
    faulty.unavailable = true;
    path.report(report("a", 1, acks));
    await until("held", () => path.held === 1);
    setTimeout(() => faulty.unavailable = false, 150);
    assert.equal(await path.close(2_000), 0);
    assert.deepEqual(handed.map((r) => r.id), ["a"]);
    assert.equal((await store.get("a"))?.exit?.code, 1);
  });
  await withExitPath(async ({ store, faulty, path, acks, lines }) => {
    for (const id of ["a", "b"]) await store.register(registration(id));
    faulty.unavailable = true;
    path.report(report("a", 1, acks));
    path.report(report("b", 2, acks));
    await until("held", () => path.held === 2);
    const t0 = performance.now();
    assert.equal(await path.close(300), 2);
    assert.ok(performance.now() - t0 < 1_000, "bounded");
    for (const [id, code] of [["a", 1], ["b", 2]]) {
      assert.ok(
        lines.some((l) =>
          l.startsWith("<3>") && l.includes(`exit of ${id} not recorded before shutdown`) &&
          l.includes(`code=${code}`)
        ),
        lines.join(""),
      );
    }
    assert.equal((await store.get("a"))?.state, "running");
  });
});

Deno.test("ExitPath logs an exit once, however many times the store could not take it", async () => {
  await withExitPath(async ({ store, faulty, path, handed, acks, lines }) => {
    await store.register(registration("c1"));
    faulty.unavailable = true;
    path.report(report("c1", 7, acks));
    await until("four tries", () => faulty.tries >= 4);
    faulty.unavailable = false;
    await until("recorded", () => handed.length === 1);
    const logged = lines.filter((l) => l.startsWith("<6>") && /exit of "?c1"?: /.test(l));
    assert.equal(logged.length, 1, lines.join(""));
    await path.close(100);
  });
});
