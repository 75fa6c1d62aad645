import assert from "node:assert/strict";
import { isEvent, type ReaperEvent } from "./events.ts";
import { ConflictError, NotFoundError, StoreInputError, StoreUnavailableError } from "./errors.ts";
import { containerKey, eventKey, STOPPED, STOPPED_INDEX_KEY } from "./keys.ts";
import { Store } from "./store.ts";
import {
  countingReads,
  exitWith,
  interceptCommits,
  racingKv,
  registration,
  runToStopped,
  withKv,
  withKvPath,
} from "./_test_util.ts";

async function allEvents(store: Store): Promise<ReaperEvent[]> {
  const out: ReaperEvent[] = [];
  for (let since = 0;;) {
    const page = await store.eventsSince(since, 7);
    if (page.length === 0) return out;
    out.push(...page);
    since = page[page.length - 1]!.seq;
  }
}

Deno.test("Store.register() records a running container with a monitor event, durably", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv, { clock: () => 5_000 });
      const { record, created } = await store.register({ ...registration("c1"), name: "web" });
      assert.equal(created, true);
      assert.equal(record.state, "running");
      assert.equal(record.name, "web");
      assert.equal(store.lastSeq, 1);
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const record = await store.get("c1");
      assert.deepEqual(record, {
        id: "c1",
        name: "web",
        runtime: "runc",
        stateDir: "/run/test/runc/c1",
        mounts: [],
        paths: [],
        pid: 100,
        startTime: 1000,
        ppid: 99,
        pStartTime: 990,
        state: "running",
        exit: null,
        createdAt: 5_000,
        updatedAt: 5_000,
      });
      const events = await allEvents(store);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.kind, "monitor");
      assert.equal(events[0]!.state, "running");
      assert.equal(events[0]!.seq, 1);
    });
  });
});

Deno.test("Store.register() is idempotent for the same run and refuses another pid", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1", 100));
      const again = await store.register(registration("c1", 100));
      assert.equal(again.created, false);
      await assert.rejects(store.register(registration("c1", 200)), ConflictError);
      assert.equal(store.lastSeq, 1, "no event for the idempotent repeat or the refusal");

      await store.recordExit("c1", 100, 1000, exitWith(0));
      await assert.rejects(store.register(registration("c1", 200)), ConflictError);
      await store.markStopped("c1");
      const replaced = await store.register(registration("c1", 200));
      assert.equal(replaced.created, true);
      assert.equal(replaced.record.pid, 200);
      assert.equal(replaced.record.exit, null);
      assert.equal((await store.get("c1"))?.state, "running");
    })
  );
});

Deno.test("Store.register() rejects ids and paths that are not safe", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      for (const id of ["", "../x", "a/b", "a\0b", ".", "x".repeat(257)]) {
        await assert.rejects(
          () => store.register(registration(id)),
          StoreInputError,
          JSON.stringify(id),
        );
      }
      await assert.rejects(
        () => store.register({ ...registration("c1"), stateDir: "relative" }),
        StoreInputError,
      );
      await assert.rejects(
        () => store.register({ ...registration("c1"), pid: 0 }),
        StoreInputError,
      );
      await assert.rejects(
        () => store.register({ ...registration("c1"), pid: -1 }),
        StoreInputError,
      );
      assert.equal(store.lastSeq, 0);
    })
  );
});

Deno.test("Store.recordExit() records an exit once and ignores stale or repeated reports", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1", 100));
      assert.equal(await store.recordExit("c1", 101, 1000, exitWith(1)), false, "other pid");
      assert.equal(await store.recordExit("c1", 100, 999, exitWith(1)), false, "other start");
      assert.equal(await store.recordExit("nope", 100, 1000, exitWith(1)), false, "unknown id");
      assert.equal(await store.recordExit("c1", 100, 1000, exitWith(3)), true);
      assert.equal(await store.recordExit("c1", 100, 1000, exitWith(4)), false, "second report");
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const record = await store.get("c1");
      assert.equal(record?.state, "stopping");
      assert.equal(record?.exit?.code, 3);
      const exits = (await allEvents(store)).filter((e) => e.kind === "exit");
      assert.equal(exits.length, 1);
      assert.equal(exits[0]!.state, "stopping");
      assert.deepEqual(exits[0]!.detail.exit, exitWith(3));
    });
  });
});

Deno.test("Store.recordExit() records one exit when many reports race", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1", 100));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.recordExit("c1", 100, 1000, exitWith(i))),
      );
      assert.equal(results.filter((r) => r).length, 1);
      assert.equal((await allEvents(store)).filter((e) => e.kind === "exit").length, 1);
    })
  );
});

Deno.test("Store.recordExits() records a burst in few commits, each exit once, as recordExit would", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      for (let i = 0; i < 100; i++) await store.register(registration(`c${i}`, 100 + i));
      const firstSeq = store.lastSeq;
      const items = Array.from({ length: 100 }, (_, i) => ({
        id: `c${i}`,
        pid: 100 + i,
        startTime: (100 + i) * 10,
        exit: exitWith(i),
      }));
      items.push({ id: "c1", pid: 101, startTime: 1010, exit: exitWith(99) }); // repeated
      items.push({ id: "c2", pid: 999, startTime: 9990, exit: exitWith(1) }); // another run
      items.push({ id: "nope", pid: 5, startTime: 1000, exit: exitWith(1) }); // unknown
      const results = await store.recordExits(items);
      assert.deepEqual(results.map((r) => r.outcome), [
        ...Array(100).fill("recorded"),
        "ignored",
        "ignored",
        "ignored",
      ]);
      const first = results[0]!;
      assert.equal(first.outcome === "recorded" && first.record.state, "stopping");
      assert.equal(first.outcome === "recorded" && first.record.exit?.code, 0);
      const exits = (await allEvents(store)).filter((e) => e.kind === "exit");
      assert.equal(exits.length, 100);
      assert.deepEqual(exits.map((e) => e.seq), exits.map((_, i) => firstSeq + 1 + i));
      assert.equal(
        (await store.recordExits([{ id: "c3", pid: 103, startTime: 1030, exit: exitWith(7) }]))[0]
          ?.outcome,
        "ignored",
        "a second report is ignored",
      );
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const stopping = await store.list("stopping");
      assert.equal(stopping.length, 100);
      assert.equal((await store.get("c1"))?.exit?.code, 1);
      assert.equal((await store.get("c42"))?.exit?.code, 42);
    });
  });
});

Deno.test("Store.markStopped() moves stopping or gc to stopped and refuses running", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await assert.rejects(store.markStopped("nope"), NotFoundError);
      await store.register(registration("a"));
      await assert.rejects(store.markStopped("a"), ConflictError);
      await store.recordExit("a", 100, 1000, exitWith(0));
      assert.equal((await store.markStopped("a")).state, "stopped");
      const seq = store.lastSeq;
      assert.equal((await store.markStopped("a")).state, "stopped");
      assert.equal(store.lastSeq, seq, "stopping twice writes nothing");

      await store.register(registration("b"));
      await store.recordExit("b", 100, 1000, exitWith(0));
      await store.enterGc("b");
      await store.markStopped("b", "operator");
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      assert.equal((await store.get("a"))?.state, "stopped");
      assert.equal((await store.get("b"))?.state, "stopped");
      assert.equal(await store.isInGc("b"), false, "leaving gc drops the entry in the same commit");
      const kinds = (await allEvents(store)).map((e) => `${e.id}:${e.kind}:${e.state}`);
      assert.deepEqual(kinds, [
        "a:monitor:running",
        "a:exit:stopping",
        "a:stopped:stopped",
        "b:monitor:running",
        "b:exit:stopping",
        "b:gc:gc",
        "b:stopped:stopped",
      ]);
    });
  });
});

Deno.test("Store.enterGc() moves stopping to gc and creates the entry in one commit", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv, { clock: () => 7_000 });
      await store.register(registration("c1"));
      await assert.rejects(store.enterGc("c1"), ConflictError, "running");
      await store.recordExit("c1", 100, 1000, exitWith(137));
      const entry = await store.enterGc("c1", {
        attempts: 1,
        nextAttemptAt: 7_500,
        lastStep: "runtime-delete",
        lastError: "exit 1",
        stderrTail: "container is still running",
        procState: "D",
      });
      assert.equal(entry.attempts, 1);
      const seq = store.lastSeq;
      assert.deepEqual(await store.enterGc("c1"), entry, "a repeat returns the same entry");
      assert.equal(store.lastSeq, seq);
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const view = await store.gcView("c1");
      assert.equal(view?.record.state, "gc");
      assert.deepEqual(view?.entry, {
        id: "c1",
        addedAt: 7_000,
        attempts: 1,
        nextAttemptAt: 7_500,
        lastStep: "runtime-delete",
        lastError: "exit 1",
        stderrTail: "container is still running",
        procState: "D",
      });
      const last = (await allEvents(store)).at(-1);
      assert.equal(last?.kind, "gc");
      assert.equal(last?.detail.procState, "D");
    });
  });
});

Deno.test("Store.gcAdd() is durable and idempotent per id", async () => {
  await withKvPath(async (path) => {
    const input = {
      id: "g1",
      runtime: "runc",
      stateDir: "/run/test/runc/g1",
      pid: 0,
      startTime: 0,
      ppid: 50,
      pStartTime: 500,
      mounts: ["/run/test/rootfs/g1"],
    };
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const first = await store.gcAdd(input);
      assert.equal(first.added, true);
      assert.equal(first.record.state, "gc");
      const second = await store.gcAdd({ ...input, ppid: 60 });
      assert.equal(second.added, false);
      assert.deepEqual(second.entry, first.entry);

      await store.register(registration("s1"));
      await store.recordExit("s1", 100, 1000, exitWith(0));
      await store.markStopped("s1");
      const moved = await store.gcAdd({ ...input, id: "s1", stateDir: "/run/test/runc/s1" });
      assert.equal(moved.added, true);
      assert.equal(moved.record.exit?.code, 0, "a known record keeps its exit");
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      assert.equal((await store.gcAdd(input)).added, false, "still idempotent after reopen");
      const entries = await store.listGc();
      assert.deepEqual(entries.map((e) => e.id), ["g1", "s1"]);
      assert.deepEqual((await store.get("g1"))?.mounts, ["/run/test/rootfs/g1"]);
      assert.equal((await store.get("g1"))?.ppid, 50);
      const gcEvents = (await allEvents(store)).filter((e) => e.kind === "gc");
      assert.equal(gcEvents.length, 2);
      assert.deepEqual((await store.listGcViews()).map((v) => v.record.id), ["g1", "s1"]);
      assert.deepEqual(await store.countByState(), { running: 0, stopping: 0, gc: 2, stopped: 0 });
    });
  });
});

Deno.test("Store.gcAdd() refuses a running container whose process is known, and one stopping, writing nothing", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const handed = { ...registration("c1", 4242), reason: "gc add" };
      const { record: running } = await store.register(registration("c1"));
      const seq = store.lastSeq;
      // Its exit is still to come: taking it would kill its process and lose that exit.
      await assert.rejects(store.gcAdd(handed), (error: unknown) => {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.state, "running");
        assert.match(error.message, /^container c1 is running/);
        return true;
      });
      assert.deepEqual(await store.get("c1"), running, "the record is untouched");
      assert.equal(await store.getGc("c1"), null);
      assert.equal(store.lastSeq, seq, "no event");
      // The exit recorded, the record written for it stays; its cleanup is under way.
      assert.equal(await store.recordExit("c1", 100, 1000, exitWith(7)), true);
      const stopping = await store.get("c1");
      assert.equal(stopping?.state, "stopping");
      await assert.rejects(store.gcAdd(handed), (error: unknown) => {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.state, "stopping");
        return true;
      });
      assert.deepEqual(await store.get("c1"), stopping);
      assert.equal(await store.getGc("c1"), null);
      // Once stopped it may be handed to GC again, keeping its exit.
      await store.markStopped("c1");
      const again = await store.gcAdd(handed);
      assert.equal(again.added, true);
      assert.equal(again.record.pid, 4242);
      assert.equal(again.record.exit?.code, 7);
    })
  );
});

Deno.test("Store.gcAdd() takes a running container whose identity is unknown, with the processes given", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      // Adopted from the state root (pid 0), and monitored after its pid was gone (start time 0).
      await store.register({ ...registration("a1"), pid: 0, startTime: 0, ppid: 0, pStartTime: 0 });
      await store.register({ ...registration("a2", 300), startTime: 0, pStartTime: 0 });
      for (const id of ["a1", "a2"]) {
        const result = await store.gcAdd({ ...registration(id, 500), reason: "gc add" });
        assert.equal(result.added, true, id);
        assert.equal(result.record.state, "gc");
        assert.deepEqual([result.record.pid, result.record.startTime], [500, 5000]);
        assert.equal((await store.getGc(id))?.attempts, 0);
      }
    })
  );
});

Deno.test("Store.recordGcAttempt() and finishGc() keep attempts and end GC", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await assert.rejects(
        store.recordGcAttempt("g1", {
          attempts: 1,
          nextAttemptAt: 1,
          lastStep: null,
          lastError: null,
          stderrTail: "",
          procState: null,
          steps: [],
        }),
        NotFoundError,
      );
      await store.register(registration("r1"));
      await assert.rejects(store.finishGc("r1"), ConflictError);
      await store.gcAdd({
        id: "g1",
        runtime: "runc",
        stateDir: "/run/test/runc/g1",
        pid: 1,
        startTime: 1,
        ppid: 0,
        pStartTime: 0,
      });
      const steps = [{
        step: "runtime-delete",
        ok: false,
        exitCode: 1,
        stderrTail: "x".repeat(10_000),
        durationMs: 12,
      }];
      const entry = await store.recordGcAttempt("g1", {
        attempts: 1,
        nextAttemptAt: 9_999,
        lastStep: "runtime-delete",
        lastError: "exit status 1",
        stderrTail: "y".repeat(100_000),
        procState: "D",
        steps,
      });
      assert.equal(entry.attempts, 1);
      assert.ok(entry.stderrTail.length <= 4096, "the tail is bounded to keep values small");
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const entry = await store.getGc("g1");
      assert.equal(entry?.attempts, 1);
      assert.equal(entry?.nextAttemptAt, 9_999);
      assert.equal(entry?.lastStep, "runtime-delete");
      const attempt = (await allEvents(store)).at(-1);
      assert.equal(attempt?.kind, "gc-attempt");
      const kept = attempt?.detail.steps as { stderrTail: string }[];
      assert.equal(kept.length, 1);
      assert.ok(kept[0]!.stderrTail.length <= 1024);

      const stopped = await store.finishGc("g1");
      assert.equal(stopped.state, "stopped");
      const seq = store.lastSeq;
      assert.equal((await store.finishGc("g1")).state, "stopped", "finishing twice is a no-op");
      assert.equal(store.lastSeq, seq);
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      assert.equal(await store.isInGc("g1"), false);
      assert.equal((await store.get("g1"))?.state, "stopped");
      const done = (await allEvents(store)).at(-1);
      assert.equal(done?.kind, "gc-done");
      assert.equal(done?.detail.attempts, 1);
      assert.deepEqual(await store.list("stopped"), [await store.get("g1")]);
      assert.equal((await store.list()).length, 2);
    });
  });
});

Deno.test("Store event seq is strictly increasing, without gaps, across reopen", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      // Concurrent transitions on different ids share one sequence.
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => store.register(registration(`c${i}`))),
      );
      assert.equal(store.lastSeq, 30);
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      assert.equal(store.lastSeq, 30);
      await store.recordExit("c0", 100, 1000, exitWith(0));
      await store.recordRestore({ monitored: 1, exited: 0, resumed: 0, adopted: 0 });
      const seqs = (await allEvents(store)).map((e) => e.seq);
      assert.deepEqual(seqs, Array.from({ length: 32 }, (_, i) => i + 1));
    });
  });
});

Deno.test("Store: a registration repeated, or a check that fails, does not reload the event seq", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const { kv: racy, race } = racingKv(kv);
      const counting = countingReads(racy);
      const store = await Store.open(counting.kv);
      await store.register(registration("c1"));
      await store.register(registration("c2"));
      counting.reset();
      for (let i = 0; i < 100; i++) {
        assert.equal((await store.register(registration("c1"))).created, false);
      }
      // Another writer changes c2 between an exit's read and its commit: the check fails and
      // the exit is tried again.
      race(async () => {
        const entry = await kv.get(containerKey("c2"));
        await kv.set(containerKey("c2"), entry.value);
      });
      assert.equal(await store.recordExit("c2", 100, 1000, exitWith(0)), true);
      assert.equal(counting.count.lists, 0, "the event seq was read again");
      assert.equal(store.lastSeq, 3);
      assert.deepEqual((await allEvents(store)).map((e) => [e.seq, e.kind, e.id]), [
        [1, "monitor", "c1"],
        [2, "monitor", "c2"],
        [3, "exit", "c2"],
      ]);
    })
  );
});

Deno.test("Store takes up the event seq after an event written behind its back", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1"));
      await store.register(registration("c2"));
      // Another writer appends an event at the seq the store would use next.
      const foreign = { ...(await allEvents(store))[0]!, seq: 3 };
      await kv.set(eventKey(3), foreign);
      assert.equal((await store.register(registration("c3"))).created, true);
      // …and one a seq further on than the next, under a commit of three exits.
      await kv.set(eventKey(6), { ...foreign, seq: 6 });
      const exits = await store.recordExits(
        ["c1", "c2", "c3"].map((id) => ({ id, pid: 100, startTime: 1000, exit: exitWith(0) })),
      );
      assert.deepEqual(exits.map((e) => e.outcome), ["recorded", "recorded", "recorded"]);
      // Nothing overwritten, seqs strictly increasing, the newest one known to the store.
      const events = await allEvents(store);
      const seqs = events.map((e) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(new Set(seqs).size, seqs.length);
      assert.equal(store.lastSeq, seqs[seqs.length - 1]);
      assert.deepEqual((await kv.get(eventKey(3))).value, foreign);
      assert.deepEqual((await kv.get(eventKey(6))).value, { ...foreign, seq: 6 });
      assert.deepEqual(
        events.filter((e) => e.kind !== "monitor" || e.id !== "c1").map((e) => `${e.kind}:${e.id}`),
        ["monitor:c2", "monitor:c3", "exit:c1", "exit:c2", "exit:c3"],
      );
      assert.deepEqual(events.map((e) => e.seq).slice(0, 4), [1, 2, 3, 4]);
    })
  );
});

Deno.test("Store.subscribe() sees each committed event in order", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const seen: number[] = [];
      const unsubscribe = store.subscribe((e) => seen.push(e.seq));
      await store.register(registration("c1"));
      await store.register(registration("c1"));
      await store.recordExit("c1", 100, 1000, exitWith(0));
      unsubscribe();
      await store.markStopped("c1");
      assert.deepEqual(seen, [1, 2]);
    })
  );
});

Deno.test("Store trims the event log to maxEvents in batches, and keeps the newest", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const store = await Store.open(kv, { maxEvents: 10, trimBatch: 4 });
      await store.register(registration("c1"));
      for (let i = 0; i < 40; i++) {
        await store.recordRestore({ monitored: i, exited: 0, resumed: 0, adopted: 0 });
      }
      const events = await allEvents(store);
      assert.ok(events.length <= 10, `${events.length} events kept`);
      assert.ok(events.length >= 6, `${events.length} events kept`);
      assert.equal(events.at(-1)?.seq, 41);
      assert.equal(events[0]!.seq, store.firstSeq);
      assert.deepEqual(
        events.map((e) => e.seq),
        Array.from({ length: events.length }, (_, i) => events[0]!.seq + i),
      );
    });
    await withKv(path, async (kv) => {
      // A lower knob on reopen trims on the next write.
      const store = await Store.open(kv, { maxEvents: 3, trimBatch: 1 });
      assert.equal(store.lastSeq, 41);
      await store.recordRestore({ monitored: 0, exited: 0, resumed: 0, adopted: 0 });
      const events = await allEvents(store);
      assert.ok(events.length <= 3);
      assert.equal(events.at(-1)?.seq, 42);
    });
  });
});

Deno.test("Store turns a failed KV write into a retryable error and writes nothing", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      let fail = false;
      const flaky = interceptCommits(kv, () => {
        if (fail) return Promise.reject(new TypeError("database is locked"));
        return Promise.resolve();
      });
      const store = await Store.open(flaky);
      await store.register(registration("c1"));
      fail = true;
      const error = await store.recordExit("c1", 100, 1000, exitWith(0)).catch((e) => e);
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.equal(error.retryable, true);
      assert.equal((await store.get("c1"))?.state, "running");
      assert.equal((await allEvents(store)).length, 1);
      fail = false;
      assert.equal(await store.recordExit("c1", 100, 1000, exitWith(0)), true);
      assert.deepEqual((await allEvents(store)).map((e) => e.seq), [1, 2]);
    });
  });
});

Deno.test("Store retries a transition when the record changes under it", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const { kv: racy, race } = racingKv(kv);
      const store = await Store.open(racy);
      await store.register(registration("c1", 100));
      // Between recordExit's read and its commit, the record is re-registered with another pid
      // (as another writer would): the retry must see the new pid and ignore the stale exit.
      race(async () => {
        const record = (await kv.get<Record<string, unknown>>(["container", "c1"])).value!;
        await kv.set(["container", "c1"], { ...record, pid: 300, startTime: 3000 });
      });
      assert.equal(await store.recordExit("c1", 100, 1000, exitWith(0)), false);
      assert.equal((await store.get("c1"))?.state, "running");
      assert.equal(store.lastSeq, 1);
    })
  );
});

Deno.test("Store refuses a record too large for KV as bad input", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const mounts = Array.from({ length: 40 }, (_, i) => `/m/${i}/${"p".repeat(4000)}`);
      await assert.rejects(store.register({ ...registration("c1"), mounts }), StoreInputError);
      assert.equal(await store.get("c1"), null);
      await store.register(registration("c1"));
      assert.equal(store.lastSeq, 1);
    })
  );
});

Deno.test("Store reports a closed KV as unavailable", async () => {
  await withKvPath(async (path) => {
    const kv = await Deno.openKv(path);
    const store = await Store.open(kv);
    kv.close();
    await assert.rejects(store.register(registration("c1")), StoreUnavailableError);
    await assert.rejects(store.get("c1"), StoreUnavailableError);
  });
});

Deno.test("Store.forgetStopped() deletes only records stopped before the cutoff", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let now = 1_000;
      const store = await Store.open(kv, { clock: () => now });
      const stopAt = async (id: string, at: number) => {
        now = at;
        await runToStopped(store, id);
      };
      await stopAt("old", 1_000);
      await stopAt("recent", 5_000);
      await store.register(registration("running"));
      await store.register(registration("in-gc"));
      await store.recordExit("in-gc", 100, 1000, exitWith(1));
      await store.enterGc("in-gc");

      assert.equal(await store.forgetStopped(3_000), 1);
      assert.equal(await store.get("old"), null);
      assert.equal((await store.get("recent"))?.state, "stopped");
      assert.equal(await store.forgetStopped(3_000), 0, "nothing left to forget");

      assert.equal(await store.forgetStopped(100_000), 1);
      const left = (await store.list()).map((r) => `${r.id}:${r.state}`).sort();
      assert.deepEqual(left, ["in-gc:gc", "running:running"]);
      // A forgotten id can be used again.
      assert.equal((await store.register(registration("old"))).created, true);
    })
  );
});

Deno.test("Store.forgetStopped() leaves a record that changes under it, and deletes the rest", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const { kv: racy, race } = racingKv(kv);
      const store = await Store.open(racy, { clock: () => 1_000 });
      for (const id of ["s1", "s2", "s3"]) await runToStopped(store, id);
      // Between the listing and the delete, s2 is registered again (as another writer would).
      race(async () => {
        const record = (await kv.get<Record<string, unknown>>(["container", "s2"])).value!;
        await kv.set(["container", "s2"], { ...record, state: "running", exit: null });
      });
      assert.equal(await store.forgetStopped(2_000), 2);
      assert.equal(await store.get("s1"), null);
      assert.equal((await store.get("s2"))?.state, "running");
      assert.equal(await store.get("s3"), null);
    })
  );
});

/** The retention index as stored: `stoppedAt:id` of each `["stopped", …]` key, in key order. */
async function stoppedIndex(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of kv.list({ prefix: [STOPPED] })) {
    out.push(`${String(entry.key[1])}:${String(entry.key[2])}`);
  }
  return out;
}

/** What the retention index must hold: one key per stopped record, by its stop time. */
async function stoppedRecords(store: Store): Promise<string[]> {
  return (await store.list("stopped"))
    .sort((a, b) => a.updatedAt - b.updatedAt || (a.id < b.id ? -1 : 1))
    .map((r) => `${r.updatedAt}:${r.id}`);
}

Deno.test("Store keeps one retention index key per stopped record through every transition", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let now = 1_000;
      const store = await Store.open(kv, { clock: () => now });
      const agree = async (expected: string[], when: string) => {
        assert.deepEqual(await stoppedIndex(kv), expected, when);
        assert.deepEqual(await stoppedRecords(store), expected, when);
      };
      await runToStopped(store, "a");
      await agree(["1000:a"], "markStopped");

      now = 2_000;
      await store.register(registration("b"));
      await store.recordExits([{ id: "b", pid: 100, startTime: 1000, exit: exitWith(1) }]);
      await store.enterGc("b");
      await store.finishGc("b");
      await agree(["1000:a", "2000:b"], "finishGc");

      now = 3_000;
      assert.equal((await store.register(registration("a", 200))).created, true);
      await agree(["2000:b"], "a stopped id registered again");

      now = 4_000;
      await store.gcAdd({ ...registration("b"), pid: 0, startTime: 0, reason: "gc add" });
      await agree([], "gc add of a stopped id");
      now = 5_000;
      await store.finishGc("b");
      await store.recordExit("a", 200, 2000, exitWith(0));
      await store.markStopped("a", "cleaned up", "stopping");
      await agree(["5000:a", "5000:b"], "stopped again");

      await store.forget("b");
      await agree(["5000:a"], "forget");

      // Registered again together, in one batched commit.
      now = 6_000;
      for (const id of ["c", "d"]) await runToStopped(store, id);
      await agree(["5000:a", "6000:c", "6000:d"], "c and d stopped");
      now = 7_000;
      const again = await Promise.all(
        ["c", "d", "e"].map((id) => store.register(registration(id, 300))),
      );
      assert.deepEqual(again.map((r) => r.created), [true, true, true]);
      await agree(["5000:a"], "registered again in a batch");

      assert.equal(await store.forgetStopped(NaN), 0, "nothing stopped before NaN");
      assert.equal(await store.forgetStopped(100_000), 1);
      await agree([], "forgotten");
    })
  );
});

Deno.test("Store.forgetStopped() keeps an id registered again during the sweep, and its index true", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const { kv: racy, race } = racingKv(kv);
      const store = await Store.open(racy, { clock: () => 1_000 });
      for (const id of ["s1", "s2", "s3"]) await runToStopped(store, id);
      assert.equal(await store.forgetStopped(0), 0);
      // Between the sweep's reads and its delete, s2 is registered again for a new run.
      race(() => store.register(registration("s2", 200)).then(() => {}));
      assert.equal(await store.forgetStopped(2_000), 2);
      assert.deepEqual((await store.list()).map((r) => `${r.id}:${r.state}:${r.pid}`), [
        "s2:running:200",
      ]);
      assert.deepEqual(await stoppedIndex(kv), []);
    })
  );
});

Deno.test("Store.forgetStopped() reads the records due, not every record", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const counting = countingReads(kv);
      let now = 1_000;
      const store = await Store.open(counting.kv, { clock: () => now });
      await store.register(registration("due"));
      await store.recordExit("due", 100, 1000, exitWith(0));
      await store.markStopped("due");
      // 2,000 not due: 1,980 running and 20 stopped after the cutoff.
      now = 5_000;
      const ids = Array.from({ length: 2_000 }, (_, i) => `c${i}`);
      await Promise.all(ids.map((id) => store.register(registration(id))));
      const late = ids.slice(0, 20);
      await store.recordExits(
        late.map((id) => ({ id, pid: 100, startTime: 1000, exit: exitWith(0) })),
      );
      for (const id of late) await store.markStopped(id);
      // The first sweep (which may index a store written before the index) is not the measure.
      assert.equal(await store.forgetStopped(0), 0);

      counting.reset();
      assert.equal(await store.forgetStopped(3_000), 1);
      const records = counting.count.byPrefix.get("container") ?? 0;
      assert.ok(
        counting.count.entries <= 4 && records <= 1,
        `one due of 2,001: read ${counting.count.entries} entries, ${records} records`,
      );
      assert.equal(await store.get("due"), null);
      assert.equal((await store.list("stopped")).length, 20);
      assert.equal((await store.list("running")).length, 1_980);

      counting.reset();
      assert.equal(await store.forgetStopped(3_000), 0);
      assert.equal(counting.count.entries, 0, "nothing due: nothing read");
    })
  );
});

Deno.test("Store.forgetStopped() sweeps a store written before the retention index, indexing it once", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let now = 1_000;
      const first = await Store.open(kv, { clock: () => now });
      await first.register(registration("old"));
      await first.recordExit("old", 100, 1000, exitWith(0));
      await first.markStopped("old");
      await first.register(registration("alive"));
      now = 5_000;
      await first.register(registration("recent"));
      await first.recordExit("recent", 100, 1000, exitWith(0));
      await first.markStopped("recent");
      // 1,500 more records stopped long ago, written as a store without the index wrote them:
      // the record alone.
      const template = (await first.get("old"))!;
      for (let at = 0; at < 1_500; at += 500) {
        const op = kv.atomic();
        for (let i = at; i < at + 500; i++) {
          const id = `legacy-${i}`;
          op.set(containerKey(id), { ...template, id, name: id, stateDir: `/run/test/runc/${id}` });
        }
        assert.ok((await op.commit()).ok);
      }
      // …and without any index key or the mark that the index is complete.
      const op = kv.atomic().delete(STOPPED_INDEX_KEY);
      for await (const entry of kv.list({ prefix: [STOPPED] })) op.delete(entry.key);
      assert.ok((await op.commit()).ok);
      assert.deepEqual(await stoppedIndex(kv), []);

      const counting = countingReads(kv);
      const upgraded = await Store.open(counting.kv, { clock: () => now });
      assert.equal(await upgraded.forgetStopped(3_000), 1_501);
      assert.equal(await upgraded.get("old"), null);
      assert.equal(await upgraded.get("legacy-0"), null);
      assert.deepEqual(
        (await upgraded.list()).map((r) => `${r.id}:${r.state}`),
        ["alive:running", "recent:stopped"],
      );
      assert.deepEqual(await stoppedIndex(kv), ["5000:recent"]);
      assert.notEqual((await kv.get(STOPPED_INDEX_KEY)).versionstamp, null);

      // Indexed once: a later open sweeps by the index alone.
      const again = await Store.open(counting.kv, { clock: () => now });
      counting.reset();
      assert.equal(await again.forgetStopped(3_000), 0);
      assert.equal(counting.count.byPrefix.get("container") ?? 0, 0, "no record read");
      assert.equal(await again.forgetStopped(100_000), 1);
      assert.equal(await again.get("recent"), null);
    })
  );
});

Deno.test("Store keeps a memory cgroup mark from register and an exit's oomKilled, durably", async () => {
  await withKvPath(async (path) => {
    const mark = { dir: "/sys/fs/cgroup/memory/c1", oomKills: 2 };
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const { record } = await store.register({ ...registration("c1"), memoryCgroup: mark });
      assert.deepEqual(record.memoryCgroup, mark);
      await assert.rejects(
        store.register({ ...registration("c2"), memoryCgroup: { dir: "rel", oomKills: 0 } }),
        StoreInputError,
      );
      await assert.rejects(
        store.register({ ...registration("c3"), memoryCgroup: { dir: "/x", oomKills: -1 } }),
        StoreInputError,
      );
      const exit = { ...exitWith(137), signal: 9, oomKilled: true };
      const [result] = await store.recordExits([{ id: "c1", pid: 100, startTime: 1000, exit }]);
      assert.equal(result?.outcome, "recorded");
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const record = await store.get("c1");
      assert.deepEqual(record?.memoryCgroup, mark);
      assert.equal(record?.exit?.oomKilled, true);
      const events = await allEvents(store);
      const exitEvent = events.find(isEvent("exit"));
      assert.equal(exitEvent?.detail.exit.oomKilled, true);
    });
  });
});

/** `count` mount points of `length` characters each, under the container's dir. */
function manyMounts(id: string, count: number, length: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const prefix = `/run/test/mounts/${id}/${i}/`;
    return prefix + "m".repeat(length - prefix.length);
  });
}

Deno.test("Store.recordExits() records 60 exits of records with 110 mounts of 250 bytes each, sized by bytes", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      for (let i = 0; i < 60; i++) {
        await store.register({
          ...registration(`big-${i}`, 100 + i),
          mounts: manyMounts(`big-${i}`, 110, 250),
        });
      }
      const results = await store.recordExits(Array.from({ length: 60 }, (_, i) => ({
        id: `big-${i}`,
        pid: 100 + i,
        startTime: (100 + i) * 10,
        exit: exitWith(i % 256),
      })));
      assert.deepEqual(results.map((r) => r.outcome), Array(60).fill("recorded"));
      for (let i = 0; i < 60; i++) {
        const record = await store.get(`big-${i}`);
        assert.equal(record?.state, "stopping");
        assert.equal(record?.exit?.code, i);
      }
    })
  );
});

Deno.test("Store.recordExits(): a store that stops taking writes after one commit of a batch leaves the rest unavailable, the committed ones recorded", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let commits = 0;
      let failFrom = Infinity;
      const flaky = interceptCommits(kv, () => {
        if (++commits >= failFrom) return Promise.reject(new TypeError("database is locked"));
        return Promise.resolve();
      });
      const store = await Store.open(flaky);
      for (let i = 0; i < 40; i++) {
        await store.register({
          ...registration(`big-${i}`, 100 + i),
          mounts: manyMounts(`big-${i}`, 110, 250),
        });
      }
      // 40 records of about 28 KB take more than one commit: the second one fails.
      failFrom = commits + 2;
      const items = Array.from({ length: 40 }, (_, i) => ({
        id: `big-${i}`,
        pid: 100 + i,
        startTime: (100 + i) * 10,
        exit: exitWith(i),
      }));
      const results = await store.recordExits(items);
      const recorded = results.filter((r) => r.outcome === "recorded").length;
      const unavailable = results.filter((r) => r.outcome === "unavailable").length;
      assert.ok(recorded > 0 && unavailable > 0, JSON.stringify(results.map((r) => r.outcome)));
      assert.equal(recorded + unavailable, 40);
      for (const [i, result] of results.entries()) {
        const stored = await store.get(`big-${i}`);
        assert.equal(stored?.state, result.outcome === "recorded" ? "stopping" : "running");
      }
      // Tried again once the store takes writes: each of the rest is recorded, none twice.
      failFrom = Infinity;
      const again = await store.recordExits(
        items.filter((_, i) => results[i]!.outcome !== "recorded"),
      );
      assert.deepEqual(again.map((r) => r.outcome), Array(unavailable).fill("recorded"));
      assert.equal((await allEvents(store)).filter((e) => e.kind === "exit").length, 40);
    })
  );
});

Deno.test("Store.recordExits() refuses the one exit a stored record cannot take, and records the 38 beside it", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      for (let i = 0; i < 38; i++) await store.register(registration(`c${i}`, 100 + i));
      // A record written before the store refused such records: 65,300 bytes of mounts.
      await store.register(registration("huge", 500));
      const huge = (await kv.get<Record<string, unknown>>(["container", "huge"])).value!;
      const mounts = ["/run/test/huge/" + "h".repeat(65_300 - 15)];
      await kv.set(["container", "huge"], { ...huge, mounts });
      const items = Array.from({ length: 38 }, (_, i) => ({
        id: `c${i}`,
        pid: 100 + i,
        startTime: (100 + i) * 10,
        exit: exitWith(i),
      }));
      items.splice(19, 0, { id: "huge", pid: 500, startTime: 5000, exit: exitWith(9) });
      const results = await store.recordExits(items);
      const refused = results[19]!;
      assert.equal(refused.outcome, "refused");
      assert.match(refused.outcome === "refused" ? refused.reason : "", /huge.*bytes/);
      assert.deepEqual(
        results.filter((_, i) => i !== 19).map((r) => r.outcome),
        Array(38).fill("recorded"),
      );
      for (let i = 0; i < 38; i++) assert.equal((await store.get(`c${i}`))?.exit?.code, i);
      assert.equal((await store.get("huge"))?.state, "running");
    })
  );
});

Deno.test("Store.recordExitLost() marks a running record's exit lost while the record is that run's, and ignores another run", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("huge", 500));
      const item = { id: "huge", pid: 500, startTime: 5000, exit: exitWith(9) };
      assert.equal(await store.recordExitLost({ ...item, pid: 501 }, "no room"), false);
      assert.equal(await store.recordExitLost(item, "no room"), true);
      assert.equal((await store.get("huge"))?.state, "running", "the record is left as it is");
      const lost = await store.lostExits();
      assert.deepEqual(lost.map((l) => [l.id, l.pid, l.exit.code, l.reason]), [
        ["huge", 500, 9, "no room"],
      ]);
      // Registered again with the same process (as one adopted with its identity unknown
      // could be): another run, whose exit is not lost.
      const record = await kv.get<Record<string, unknown>>(["container", "huge"]);
      await kv.set(["container", "huge"], { ...record.value!, createdAt: Date.now() + 1 });
      assert.deepEqual(await store.lostExits(), [], "another run");
      assert.equal((await kv.get(["lost", "huge"])).value, null, "its mark is gone");
      // A lost exit stays lost while the record is that run's, and is gone once it is not.
      assert.equal(await store.recordExitLost(item, "no room"), true);
      assert.equal((await store.lostExits()).length, 1);
      const again = await kv.get<Record<string, unknown>>(["container", "huge"]);
      await kv.set(["container", "huge"], { ...again.value!, state: "stopped" });
      assert.deepEqual(await store.lostExits(), []);
      assert.equal((await kv.get(["lost", "huge"])).value, null);
    })
  );
});

Deno.test("Store.register() and gcAdd() refuse a record too large to take its exit, naming the field", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      // 65,300 bytes of mounts: under the value limit alone, over it with an exit.
      const mounts = [...manyMounts("huge", 261, 250), "/run/test/huge/" + "h".repeat(35)];
      await assert.rejects(
        store.register({ ...registration("huge"), mounts }),
        (e: unknown) => e instanceof StoreInputError && /^mounts too large/.test(e.message),
      );
      const paths = manyMounts("p", 300, 250);
      await assert.rejects(
        store.gcAdd({ ...registration("huge"), paths }),
        (e: unknown) => e instanceof StoreInputError && /^paths too large/.test(e.message),
      );
      assert.equal(await store.get("huge"), null);
      // Just under the limit is taken, and its largest exit fits.
      const fits = manyMounts("fits", 240, 250);
      await store.register({ ...registration("fits"), mounts: fits });
      const [result] = await store.recordExits([{
        id: "fits",
        pid: 100,
        startTime: 1000,
        exit: { ...exitWith(1), reason: "\u20ac".repeat(5000) },
      }]);
      assert.equal(result?.outcome, "recorded");
    })
  );
});

Deno.test("Store.forgetStopped() forgets 1,000 records due at once", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv, { clock: () => 1_000 });
      for (let i = 0; i < 1_000; i++) {
        const id = `s${i}`;
        await store.register(registration(id));
        await store.recordExit(id, 100, 1000, exitWith(0));
        await store.markStopped(id);
      }
      await store.register(registration("alive"));
      assert.equal(await store.forgetStopped(2_000), 1_000);
      assert.deepEqual((await store.list()).map((r) => r.id), ["alive"]);
    })
  );
});

Deno.test("Store.register() takes an unknown identity (pid 0, start time 0), which a later registration names", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      const unknown = { pid: 0, startTime: 0, ppid: 0, pStartTime: 0 };
      await assert.rejects(
        store.register({ ...registration("x"), ...unknown, startTime: 5 }),
        StoreInputError,
      );
      const adopted = await store.register({ ...registration("c1"), ...unknown });
      assert.equal(adopted.record.pid, 0);
      const named = await store.register(registration("c1", 300));
      assert.equal(named.created, true);
      assert.equal(named.record.pid, 300);
      await assert.rejects(store.register(registration("c1", 301)), ConflictError);
      await assert.rejects(store.register({ ...registration("c1"), ...unknown }), ConflictError);
    })
  );
});

Deno.test("Store.recordExits() keeps the code of a stored record with little room left, cutting the reason short", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("tight"));
      const record = (await kv.get<Record<string, unknown>>(["container", "tight"])).value!;
      // Stored before records were sized at the door: room for a code, not for a long reason.
      const mounts = [...manyMounts("tight", 250, 250), "/run/test/t/" + "t".repeat(300)];
      await kv.set(["container", "tight"], { ...record, mounts });
      const [result] = await store.recordExits([{
        id: "tight",
        pid: 100,
        startTime: 1000,
        exit: { ...exitWith(3), reason: "x".repeat(1000) },
      }]);
      assert.equal(result?.outcome, "recorded", JSON.stringify(result));
      const stored = await store.get("tight");
      assert.equal(stored?.exit?.code, 3);
      assert.ok(stored!.exit!.reason.length < 1000);
    })
  );
});

Deno.test("Store.forget() deletes a stopped record only, and never one registered meanwhile", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const { kv: racy, race } = racingKv(kv);
      const store = await Store.open(racy);
      await assert.rejects(store.forget("c1"), NotFoundError);
      await store.register(registration("c1"));
      await assert.rejects(
        store.forget("c1"),
        /container c1 is running: only a stopped one can go/,
      );
      await store.recordExit("c1", 100, 1000, exitWith(0));
      await assert.rejects(store.forget("c1"), ConflictError);
      await store.enterGc("c1");
      await assert.rejects(store.forget("c1"), /container c1 is in GC/);
      await store.finishGc("c1");
      assert.equal((await store.forget("c1")).state, "stopped");
      assert.equal(await store.get("c1"), null);

      // Between forget's read and its delete the id is registered again: that record stays.
      await store.register(registration("c2"));
      await store.recordExit("c2", 100, 1000, exitWith(0));
      await store.markStopped("c2");
      race(() => store.register(registration("c2", 200)).then(() => {}));
      await assert.rejects(store.forget("c2"), ConflictError);
      assert.equal((await store.get("c2"))?.pid, 200);
    })
  );
});

/** A Deno.Kv like `kv` that counts its commits. */
function countingCommits(kv: Deno.Kv): { kv: Deno.Kv; commits: () => number } {
  let commits = 0;
  return {
    kv: interceptCommits(kv, () => {
      commits++;
      return Promise.resolve();
    }),
    commits: () => commits,
  };
}

Deno.test("Store.register() of 100 containers at once shares commits, and each gets the answer it would get alone", async () => {
  await withKvPath(async (path) => {
    await withKv(path, async (kv) => {
      const counted = countingCommits(kv);
      const store = await Store.open(counted.kv);
      await store.register(registration("old-same", 50));
      await store.register(registration("old-other", 51));
      const before = counted.commits();
      const seqBefore = store.lastSeq;
      const inputs = Array.from({ length: 100 }, (_, i) => registration(`c${i}`, 100 + i));
      inputs.push(registration("c5", 105)); // the same run again
      inputs.push(registration("c6", 999)); // another pid for a container in the same batch
      inputs.push(registration("old-same", 50)); // already registered, the same run
      inputs.push(registration("old-other", 52)); // already running with another pid
      const settled = await Promise.allSettled(inputs.map((input) => store.register(input)));
      for (let i = 0; i < 100; i++) {
        const s = settled[i]!;
        assert.equal(s.status, "fulfilled", `c${i}: ${s.status === "rejected" && s.reason}`);
        assert.equal(s.status === "fulfilled" && s.value.created, true);
        assert.equal(s.status === "fulfilled" && s.value.record.pid, 100 + i);
      }
      const [again, otherPid, oldSame, oldOther] = settled.slice(100);
      assert.equal(again?.status === "fulfilled" && again.value.created, false);
      assert.ok(otherPid?.status === "rejected" && otherPid.reason instanceof ConflictError);
      assert.equal(oldSame?.status === "fulfilled" && oldSame.value.created, false);
      assert.ok(oldOther?.status === "rejected" && oldOther.reason instanceof ConflictError);
      // The first goes alone, the other 99 wait for it and share commits of at most 33.
      const commits = counted.commits() - before;
      assert.ok(commits <= 6, `${commits} commits for 100 registrations`);
      const monitors = (await allEvents(store)).filter((e) => e.seq > seqBefore);
      assert.equal(monitors.length, 100);
      assert.ok(monitors.every((e) => e.kind === "monitor" && e.state === "running"));
      assert.deepEqual(monitors.map((e) => e.seq), monitors.map((_, i) => seqBefore + 1 + i));
      assert.deepEqual(
        new Set(monitors.map((e) => e.id)),
        new Set(Array.from({ length: 100 }, (_, i) => `c${i}`)),
      );
    });
    await withKv(path, async (kv) => {
      const store = await Store.open(kv);
      assert.equal((await store.list("running")).length, 102);
      assert.equal((await store.get("c6"))?.pid, 106);
      assert.equal((await store.get("old-other"))?.pid, 51);
    });
  });
});

Deno.test("Store.register() at once: a record written under the batch makes each registration go alone", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let commits = 0;
      const racy = interceptCommits(kv, async () => {
        // The second commit is the batch's: another writer registers c3 with pid 300 first.
        if (++commits !== 2) return;
        const record = { ...registration("c3", 300), state: "running", exit: null };
        await kv.set(["container", "c3"], record);
      });
      const store = await Store.open(racy);
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => store.register(registration(`c${i}`, 100 + i))),
      );
      settled.forEach((s, i) => {
        if (i === 3) {
          assert.ok(
            s.status === "rejected" && s.reason instanceof ConflictError,
            `c3: ${s.status}`,
          );
        } else {
          assert.equal(s.status, "fulfilled", `c${i}`);
        }
      });
      assert.equal((await store.get("c3"))?.pid, 300);
      const monitors = (await allEvents(store)).filter((e) => e.kind === "monitor");
      assert.deepEqual(
        monitors.map((e) => e.id).sort(),
        [0, 1, 2, 4, 5, 6, 7, 8, 9].map((i) => `c${i}`),
      );
      assert.deepEqual(monitors.map((e) => e.seq), monitors.map((_, i) => i + 1));
    })
  );
});

Deno.test("Store.register() of 60 records with 110 mounts of 250 bytes each at once, committed within the size limit", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const counted = countingCommits(kv);
      const store = await Store.open(counted.kv);
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
        store.register({
          ...registration(`big-${i}`, 100 + i),
          mounts: manyMounts(`big-${i}`, 110, 250),
        })));
      assert.ok(results.every((r) => r.created));
      // About 28 KB each: at most 28 fit a commit of 800 KiB; 60 need at least 3 commits.
      assert.ok(counted.commits() >= 3 && counted.commits() < 60, `${counted.commits()} commits`);
      for (let i = 0; i < 60; i++) {
        const record = await store.get(`big-${i}`);
        assert.equal(record?.mounts.length, 110);
      }
    })
  );
});

Deno.test("Store.register() of a new container commits without reading first; a known one is read and decided", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let reads = 0;
      const counting = new Proxy(kv, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop === "getMany") reads++;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const store = await Store.open(counting);
      for (let i = 0; i < 10; i++) await store.register(registration(`c${i}`, 100 + i));
      assert.equal(reads, 0, "a new container needs no read");
      assert.equal((await store.register(registration("c3", 103))).created, false);
      await assert.rejects(store.register(registration("c4", 999)), ConflictError);
      assert.ok(reads >= 2, "a known container is read");
      assert.deepEqual(
        (await allEvents(store)).map((e) => [e.seq, e.kind, e.id]),
        Array.from({ length: 10 }, (_, i) => [i + 1, "monitor", `c${i}`]),
      );
    })
  );
});

Deno.test("Store.eventsSince() gives the newest events from memory, the same as the file has them", async () => {
  await withKvPath(async (path) => {
    let lists = 0;
    await withKv(path, async (kv) => {
      const counting = new Proxy(kv, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop === "list") lists++;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const store = await Store.open(counting, { maxEvents: 600, trimBatch: 100 });
      for (let i = 0; i < 700; i++) await store.register(registration(`c${i}`, 100 + i));
      await store.recordExits([{ id: "c7", pid: 107, startTime: 1070, exit: exitWith(7) }]);
      const last = store.lastSeq;
      const fromMemory = new Map<number, ReaperEvent[]>();
      const before = lists;
      for (const since of [last, last - 1, last - 5, last - 300]) {
        fromMemory.set(since, await store.eventsSince(since, 50));
      }
      assert.equal(lists, before, "the newest events come without a read of the file");
      assert.deepEqual(fromMemory.get(last), []);
      assert.equal(fromMemory.get(last - 1)?.[0]?.kind, "exit");
      // Older than memory holds, or trimmed: read from the file.
      const old = await store.eventsSince(0, 10);
      assert.ok(lists > before);
      assert.equal(old[0]?.seq, store.firstSeq);
      await withKv(path, async (again) => {
        const fresh = await Store.open(again);
        for (const [since, events] of fromMemory) {
          assert.deepEqual(events, await fresh.eventsSince(since, 50), `since ${since}`);
        }
      });
    });
  });
});

Deno.test("Store.recordExits() after a failed batch check reads each exit's record once and answers with the record it wrote", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      let reads = 0;
      const { kv: racy, race } = racingKv(kv);
      // Reads of records (a failed commit may also look at the event keys it wanted).
      const isRecord = (key: Deno.KvKey) => key[0] === "container";
      const counting = new Proxy(racy, {
        get(target, prop) {
          if (prop === "get") {
            return (key: Deno.KvKey) => {
              if (isRecord(key)) reads++;
              return target.get(key);
            };
          }
          if (prop === "getMany") {
            return (keys: Deno.KvKey[]) => {
              if (keys.some(isRecord)) reads++;
              return target.getMany(keys);
            };
          }
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const store = await Store.open(counting);
      await store.register(registration("c1", 100));
      await store.register(registration("c2", 101));
      // Another writer rewrites c1 as it was between the kept record and the exit's commit.
      race(async () => {
        const entry = await kv.get(containerKey("c1"));
        assert.ok(entry.value !== null);
        await kv.set(containerKey("c1"), entry.value);
      });
      reads = 0;
      const results = await store.recordExits([
        { id: "c1", pid: 100, startTime: 1000, exit: exitWith(1) },
        { id: "c2", pid: 101, startTime: 1010, exit: exitWith(2) },
      ]);
      assert.equal(reads, 2, "one read per exit recorded alone");
      assert.deepEqual(results.map((r) => r.outcome), ["recorded", "recorded"]);
      for (const [i, result] of results.entries()) {
        assert.ok(result.outcome === "recorded");
        assert.equal(result.record.state, "stopping");
        assert.equal(result.record.exit?.code, i + 1);
        assert.deepEqual(result.record, await store.get(`c${i + 1}`));
      }
    })
  );
});
