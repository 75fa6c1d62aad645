import assert from "node:assert/strict";
import { defaultConfig } from "../config.ts";
import { getLogger } from "../log.ts";
import { Store } from "../store/store.ts";
import { exitWith, registration, withKv, withKvPath } from "../store/_test_util.ts";
import { wireParts } from "./wiring.ts";

Deno.test("wireParts: an exit of an earlier run, ignored by the store, leaves the OOM watch of the run monitored now", async () => {
  const cgroup = await Deno.makeTempDir({ prefix: "reaperd-wiring-" });
  const oomKills = (n: number) =>
    Deno.writeTextFileSync(`${cgroup}/memory.events`, `oom ${n}\noom_kill ${n}\n`);
  try {
    oomKills(0);
    await withKvPath((path) =>
      withKv(path, async (kv) => {
        const store = await Store.open(kv);
        const parts = wireParts({
          config: defaultConfig(),
          store,
          cleaner: { clean: () => Promise.reject(new Error("not called")) },
          log: getLogger("test"),
          now: Date.now,
        }, "test");
        // The run monitored now (pid 200), as monitor records and watches it.
        const { record } = await store.register({
          ...registration("c1", 200),
          memoryCgroup: { dir: cgroup, oomKills: 0 },
        });
        parts.oom.watch(record);
        // An exit decoded for the run before it (pid 100), from a watch replaced meanwhile.
        const earlier = registration("c1", 100);
        parts.exitPath.report({
          id: "c1",
          name: "c1",
          runtime: "runc",
          fifo: `${record.stateDir}/exit_fifo`,
          pidInfo: {
            pid: earlier.pid,
            startTime: earlier.startTime,
            ppid: earlier.ppid,
            pStartTime: earlier.pStartTime,
          },
          exit: exitWith(0),
        });
        assert.equal(await parts.exitPath.close(), 0);
        assert.equal(
          (await store.get("c1"))?.state,
          "running",
          "the earlier run's exit is ignored",
        );
        oomKills(1);
        const exit = parts.oom.judge("c1", record.pid, record.startTime, exitWith(137));
        assert.equal(exit.oomKilled, true, "the run monitored now is still judged by its cgroup");
      })
    );
  } finally {
    await Deno.remove(cgroup, { recursive: true });
  }
});
