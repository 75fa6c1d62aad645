import assert from "node:assert/strict";
import { defaultConfig } from "../config.ts";
import { getLogger } from "../log.ts";
import { Store } from "../store/store.ts";
import { exitWith, registration, withKv, withKvPath } from "../store/_test_util.ts";
import { ReaperService } from "./service.ts";

Deno.test("ReaperService.wait sees an exit committed while it reads the record", async () => {
  await withKvPath((path) =>
    withKv(path, async (kv) => {
      const store = await Store.open(kv);
      await store.register(registration("c1"));
      // The first read answers "running", and the exit is committed before wait sees that answer.
      let reads = 0;
      const racing = new Proxy(store, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
          return async (id: string) => {
            const record = await target.get(id);
            if (reads++ === 0) {
              await target.recordExits([{ id, pid: 100, startTime: 1000, exit: exitWith(7) }]);
            }
            return record;
          };
        },
      });
      const service = new ReaperService({
        config: defaultConfig(),
        store: racing,
        cleaner: {
          clean: () =>
            Promise.resolve({
              ok: true,
              steps: [],
              failedStep: null,
              error: null,
              stderrTail: "",
              procState: null,
            }),
        },
        log: getLogger("test"),
      });
      try {
        const started = performance.now();
        const record = await service.wait("c1", 5_000);
        const tookMs = performance.now() - started;
        assert.equal(record.exit?.code, 7);
        assert.ok(tookMs < 2_000, `wait returned after ${Math.round(tookMs)} ms, its timeout`);
      } finally {
        await service.close();
      }
    })
  );
});
