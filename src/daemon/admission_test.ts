import assert from "node:assert/strict";
import type { ProcStat } from "../sys/proc.ts";
import { Admission } from "./admission.ts";
import { ApiError } from "./api.ts";

const ROOT = "/nonexistent-reaperd-root";
const alive = new Map<number, number>([[100, 5000], [101, 4999], [102, 6000]]);
const zombies = new Set([102]);
const readStat = (pid: number): ProcStat | null => {
  const startTime = alive.get(pid);
  const state = zombies.has(pid) ? "Z" : "S";
  return startTime === undefined ? null : { pid, comm: "x", state, ppid: 1, startTime };
};
const admission = new Admission(
  {
    stateRoot: ROOT,
    stateDirPattern: "{stateRoot}/{runtime}/{id}",
    runtimes: { runc: { path: "/r", args: [] } },
  },
  readStat,
);
const base = { id: "c1", runtime: "runc", stateDir: `${ROOT}/runc/c1`, pid: 100, ppid: 101 };

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ApiError && e.status === 400, String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("Admission.monitor() reads live start times and refuses a reused pid", () => {
  assert.deepEqual(admission.monitor(base, false), {
    startTime: 5000,
    pStartTime: 4999,
    exited: false,
  });
  assert.deepEqual(admission.monitor({ ...base, startTime: 5000 }, false).startTime, 5000);
  refused(
    () => admission.monitor({ ...base, startTime: 42 }, false),
    /pid 100 is alive with start time 5000, not 42: that is another process/,
  );
  refused(() => admission.monitor({ ...base, pid: 1 }, false), /pid 1 is init/);
  refused(() => admission.monitor({ ...base, runtime: "crun" }, false), /unknown runtime "crun"/);
});

Deno.test("Admission.monitor() takes a gone init as identity unknown only with the FIFO held", () => {
  const gone = { ...base, pid: 200, ppid: 201 };
  assert.deepEqual(admission.monitor(gone, true), { startTime: 0, pStartTime: 0, exited: true });
  refused(() => admission.monitor(gone, false), /pid 200 does not exist; give --start-time/);
  assert.deepEqual(admission.monitor({ ...gone, ppid: 0 }, true), {
    startTime: 0,
    pStartTime: 0,
    exited: true,
  });
});

Deno.test("Admission.monitor() tells from its one /proc read whether the pid has exited", () => {
  // A zombie has exited: its status is what the FIFO will carry.
  assert.deepEqual(admission.monitor({ ...base, pid: 102 }, false), {
    startTime: 6000,
    pStartTime: 4999,
    exited: true,
  });
  // Gone, with its start time given: exited, recorded under the given identity.
  assert.deepEqual(admission.monitor({ ...base, pid: 200, startTime: 7000 }, false), {
    startTime: 7000,
    pStartTime: 4999,
    exited: true,
  });
  assert.equal(admission.monitor({ ...base, startTime: 5000 }, false).exited, false);
});

Deno.test("Admission.gcAdd() refuses a live pid or ppid without its start time", () => {
  refused(() => admission.gcAdd(base), /pid 100 is alive: pass --start-time/);
  refused(
    () => admission.gcAdd({ ...base, startTime: 5000 }),
    /ppid 101 is alive: pass --pstart-time/,
  );
  assert.deepEqual(admission.gcAdd({ ...base, startTime: 5000, pStartTime: 4999 }), {
    stateDir: `${ROOT}/runc/c1`,
    startTime: 5000,
    pStartTime: 4999,
  });
  // Gone: nothing of it is left to signal; kept with its identity unknown.
  const { stateDir: _, ...noDir } = { ...base, pid: 200, ppid: 0 };
  assert.deepEqual(admission.gcAdd(noDir), {
    stateDir: `${ROOT}/runc/c1`,
    startTime: 0,
    pStartTime: 0,
  });
});

Deno.test("Admission: a state dir is exactly the container's own", () => {
  for (const stateDir of [`${ROOT}/runc`, ROOT, `${ROOT}/runc/c2`, `${ROOT}/runc/c1/x`]) {
    refused(
      () => admission.gcAdd({ ...base, startTime: 5000, pStartTime: 4999, stateDir }),
      /stateDir must be/,
    );
    refused(() => admission.monitor({ ...base, stateDir }, false), /stateDir must be/);
  }
  admission.fifoDir(`${ROOT}/runc/c1`);
  admission.fifoDir(`${ROOT}/anything/c2/`);
  for (const dir of [`${ROOT}/runc`, ROOT, `${ROOT}/runc/c1/x`, "/elsewhere/runc/c1"]) {
    refused(() => admission.fifoDir(dir), /stateDir/);
  }
});
