import assert from "node:assert/strict";
import { FAKE_RUNTIME, fakeRuntime } from "../../tests/fixtures/shim.ts";
import { identify, isAlive, readProcStat } from "../sys/proc.ts";
import type { ContainerRecord } from "../types.ts";
import { runCommand } from "../sys/command.ts";
import { RuntimeCleaner } from "./cleaner.ts";
import { oci } from "./kinds/mod.ts";
import { testKind } from "./kinds/_test_kind.ts";
import { runtimeKill } from "./oci_steps.ts";
import { type CleanupSettings, defaultCleanupSettings, type RuntimeTable } from "./config.ts";
import { needs } from "../../tests/support/needs.ts";
import { exists } from "../../tests/support/fs.ts";

const asRoot = needs("root");
const withFreezerV1 = needs("root", "freezer-v1");

const ALL_STEPS = [
  "kill-shim",
  "kill-container",
  "runtime-kill",
  "runtime-delete",
  "unmount",
  "remove-paths",
  "remove-state-dir",
];

interface Fixture {
  tmp: string;
  stateRoot: string;
  stateDir: string;
  fakeDir: string;
  record(over?: Partial<ContainerRecord>): ContainerRecord;
  cleaner(runtimes?: RuntimeTable, settings?: Partial<CleanupSettings>): RuntimeCleaner;
  argvLog(): Promise<string[]>;
}

/** A state root holding `<root>/<runtime>/c1/<runtime>` (the runtime's --root) and a fake dir. */
async function fixture(runtime = "fakert"): Promise<Fixture> {
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-cleaner-" });
  const stateRoot = `${tmp}/state`;
  const stateDir = `${stateRoot}/${runtime}/c1`;
  const fakeDir = `${tmp}/fake`;
  await Deno.mkdir(`${stateDir}/${runtime}/c1`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${stateDir}/${runtime}/c1/state.json`, "{}");
  await Deno.mkdir(fakeDir);
  await fakeRuntime();
  return {
    tmp,
    stateRoot,
    stateDir,
    fakeDir,
    record: (over = {}) => ({
      id: "c1",
      name: "c1",
      runtime,
      stateDir,
      mounts: [],
      paths: [],
      state: "gc",
      exit: null,
      createdAt: 0,
      updatedAt: 0,
      pid: 0,
      startTime: 0,
      ppid: 0,
      pStartTime: 0,
      ...over,
    }),
    cleaner: (runtimes, settings = {}) =>
      new RuntimeCleaner({
        runtimes: runtimes ?? { [runtime]: { path: FAKE_RUNTIME, args: ["--fake-dir", fakeDir] } },
        settings: {
          ...defaultCleanupSettings(stateRoot),
          stepTimeoutMs: 3000,
          killCheckIntervalMs: 20,
          ...settings,
        },
      }),
    argvLog: async () => {
      try {
        return (await Deno.readTextFile(`${fakeDir}/argv.log`)).trim().split("\n");
      } catch {
        return [];
      }
    },
  };
}

/** Where a test keeps host data (`host`) and mounts it inside the state dir (`target`). */
function hostDirAt(f: Fixture): { host: string; target: string } {
  return { host: `${f.tmp}/host`, target: `${f.stateDir}/rootfs` };
}

/** Creates `host` holding a "precious" file and bind-mounts it on `target`, `times` times. */
async function bindMount(host: string, target: string, times: number): Promise<void> {
  await Deno.mkdir(host);
  await Deno.writeTextFile(`${host}/precious`, "host data");
  await Deno.mkdir(target);
  for (let i = 0; i < times; i++) await run(["mount", "--bind", host, target]);
}

/** SIGKILLs each child unless it is dead already (by the cleaner's hand, say), and reaps it. */
async function killAndWait(...children: Deno.ChildProcess[]): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already dead.
    }
    await child.status;
  }
}

async function run(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv;
  const out = await new Deno.Command(cmd ?? "", { args, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("a delete that fails 3 times fails the pass at runtime-delete, then succeeds", async () => {
  const f = await fixture();
  try {
    await Deno.writeTextFile(`${f.fakeDir}/fail-delete`, "3");
    const cleaner = f.cleaner();
    for (let i = 1; i <= 3; i++) {
      const out = await cleaner.clean(f.record());
      assert.equal(out.ok, false, `attempt ${i}`);
      assert.equal(out.failedStep, "runtime-delete");
      assert.match(out.error ?? "", /device or resource busy/);
      assert.match(out.stderrTail, /device or resource busy/);
      assert.deepEqual(out.steps.map((s) => s.step), ALL_STEPS.slice(0, 4));
      assert.equal(out.steps[3]?.exitCode, 1);
      // Later steps wait for the next attempt: the state dir is still there.
      assert.ok(await exists(f.stateDir));
    }
    const out = await cleaner.clean(f.record());
    assert.equal(out.ok, true, out.error ?? "");
    assert.equal(out.failedStep, null);
    assert.deepEqual(out.steps.map((s) => s.step), ALL_STEPS);
    assert.ok(out.steps.every((s) => s.ok));
    assert.ok(!(await exists(f.stateDir)));

    const root = `${f.stateDir}/fakert`;
    const expected = [];
    for (let i = 0; i < 4; i++) {
      // Leading config args come first; fake_runtime.sh logs what follows them.
      expected.push(`--root ${root} kill c1 9`, `--root ${root} delete --force c1`);
    }
    assert.deepEqual(await f.argvLog(), expected);

    // Everything is gone: another pass finds nothing to do and calls no runtime.
    const again = await cleaner.clean(f.record());
    assert.equal(again.ok, true);
    assert.equal((await f.argvLog()).length, 8);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a runtime call that hangs is killed at the step timeout and reported", async () => {
  const f = await fixture();
  try {
    await Deno.writeTextFile(`${f.fakeDir}/hang`, "delete");
    const started = Date.now();
    const out = await f.cleaner(undefined, { stepTimeoutMs: 300 }).clean(f.record());
    assert.ok(Date.now() - started < 5000);
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "runtime-delete");
    assert.match(out.error ?? "", /timed out after 300 ms and was killed/);
    const step = out.steps.find((s) => s.step === "runtime-delete");
    assert.equal(step?.exitCode, null);
    assert.ok((step?.durationMs ?? 0) >= 300);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a failing runtime kill is recorded but does not stop the pass", async () => {
  const f = await fixture();
  try {
    await Deno.writeTextFile(`${f.fakeDir}/hang`, "kill");
    const out = await f.cleaner(undefined, { stepTimeoutMs: 200 }).clean(f.record());
    assert.equal(out.ok, true, out.error ?? "");
    const kill = out.steps.find((s) => s.step === "runtime-kill");
    assert.equal(kill?.ok, false);
    assert.match(kill?.stderrTail ?? "", /timed out/);
    assert.ok(!(await exists(f.stateDir)));
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("'does not exist' from kill and delete counts as done", async () => {
  const f = await fixture();
  try {
    await Deno.writeTextFile(`${f.fakeDir}/missing`, "");
    const out = await f.cleaner().clean(f.record());
    assert.equal(out.ok, true, out.error ?? "");
    assert.ok(out.steps.every((s) => s.ok));
    assert.match(out.steps[2]?.stderrTail ?? "", /does not exist/);
    assert.equal(out.steps[2]?.exitCode, 1);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a missing runtime binary is reported clearly", async () => {
  const f = await fixture();
  try {
    const out = await f.cleaner({ fakert: { path: "/nonexistent/fakert", args: [] } })
      .clean(f.record());
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "runtime-delete");
    assert.equal(out.error, "runtime-delete: runtime binary /nonexistent/fakert not found");
    assert.equal(out.steps.find((s) => s.step === "runtime-kill")?.ok, false);
    assert.ok(await exists(f.stateDir));
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("an unknown runtime fails the pass naming it, touching nothing", async () => {
  const f = await fixture();
  try {
    const out = await f.cleaner().clean(f.record({ runtime: "nope" }));
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, null);
    assert.match(out.error ?? "", /unknown runtime "nope".*configured: fakert/);
    assert.deepEqual(out.steps, []);
    assert.ok(await exists(f.stateDir));
    // Inherited object keys are not runtimes either.
    const proto = await f.cleaner().clean(f.record({ runtime: "toString" }));
    assert.match(proto.error ?? "", /unknown runtime "toString"/);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("records with an unsafe id or state dir are refused", async () => {
  const f = await fixture();
  try {
    const cleaner = f.cleaner();
    for (
      const over of [
        { id: "--all" },
        { id: "" },
        { id: "a/b" },
        { stateDir: "relative/dir" },
        { stateDir: `${f.tmp}/elsewhere/c1` },
        { stateDir: `${f.stateRoot}/fakert/../../escape` },
        { stateDir: f.stateRoot },
      ]
    ) {
      const out = await cleaner.clean(f.record(over));
      assert.equal(out.ok, false, JSON.stringify(over));
      assert.deepEqual(out.steps, []);
      assert.match(out.error ?? "", /^cannot clean container/);
    }
    assert.deepEqual(await f.argvLog(), []);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a runtime of the kata kind gets no --root, whatever its name", async () => {
  const f = await fixture("vm");
  try {
    const spec = { path: FAKE_RUNTIME, args: ["--fake-dir", f.fakeDir], kind: "kata" };
    const out = await f.cleaner({ vm: spec }).clean(f.record());
    assert.equal(out.ok, true, out.error ?? "");
    assert.deepEqual(await f.argvLog(), ["kill c1 9", "delete --force c1"]);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a process whose pid matches but start time does not is never signalled", async () => {
  const f = await fixture();
  const child = new Deno.Command("sleep", { args: ["30"], stdin: "null", stdout: "null" }).spawn();
  try {
    const real = identify(child.pid);
    assert.ok(real !== null);
    const out = await f.cleaner().clean(f.record({
      pid: child.pid,
      startTime: real.startTime + 1,
      ppid: child.pid,
      pStartTime: real.startTime + 7,
    }));
    assert.equal(out.ok, true, out.error ?? "");
    assert.match(out.steps[0]?.stderrTail ?? "", /not running/);
    assert.match(out.steps[1]?.stderrTail ?? "", /not running/);
    // Give a stray signal time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(isAlive(real));
    assert.notEqual(readProcStat(child.pid)?.state, "Z");
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("the container process and the shim, named right, are SIGKILLed", async () => {
  const f = await fixture();
  const container = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
  const shim = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
  try {
    const c = identify(container.pid);
    const s = identify(shim.pid);
    assert.ok(c !== null && s !== null);
    const out = await f.cleaner().clean(f.record({
      pid: c.pid,
      startTime: c.startTime,
      ppid: s.pid,
      pStartTime: s.startTime,
    }));
    assert.equal(out.ok, true, out.error ?? "");
    assert.match(out.steps[0]?.stderrTail ?? "", /sent SIGKILL/);
    assert.match(out.steps[1]?.stderrTail ?? "", /killed/);
    assert.equal((await container.status).signal, "SIGKILL");
    assert.equal((await shim.status).signal, "SIGKILL");
    // The fake runtime was asked to resume the container before the kill.
    assert.ok((await f.argvLog()).includes(`--root ${f.stateDir}/fakert resume c1`));
  } finally {
    await killAndWait(container, shim);
    await Deno.remove(f.tmp, { recursive: true });
  }
});

asRoot.test("remove-state-dir refuses while a bind mount lies inside; host files survive", async () => {
  const f = await fixture();
  const { host, target } = hostDirAt(f);
  let mounted = false;
  try {
    await bindMount(host, target, 1);
    mounted = true;

    const cleaner = f.cleaner();
    const out = await cleaner.clean(f.record());
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "remove-state-dir");
    assert.match(out.error ?? "", /EBUSY/);
    assert.match(out.error ?? "", new RegExp(`${target}`));
    assert.equal(await Deno.readTextFile(`${host}/precious`), "host data");
    assert.equal(await Deno.readTextFile(`${target}/precious`), "host data");

    await run(["umount", target]);
    mounted = false;
    const after = await cleaner.clean(f.record());
    assert.equal(after.ok, true, after.error ?? "");
    assert.ok(!(await exists(f.stateDir)));
    assert.equal(await Deno.readTextFile(`${host}/precious`), "host data");
  } finally {
    if (mounted) await run(["umount", target]);
    await Deno.remove(f.tmp, { recursive: true });
  }
});

asRoot.test("registered mounts are unmounted first, then the state dir goes", async () => {
  const f = await fixture();
  const { host, target } = hostDirAt(f);
  let mounted = false;
  try {
    await bindMount(host, target, 2); // stacked twice
    mounted = true;
    const out = await f.cleaner().clean(f.record({ mounts: [target] }));
    mounted = false;
    assert.equal(out.ok, true, out.error ?? "");
    assert.match(out.steps[4]?.stderrTail ?? "", /unmounted/);
    assert.ok(!(await exists(f.stateDir)));
    assert.equal(await Deno.readTextFile(`${host}/precious`), "host data");
  } finally {
    while (mounted) {
      try {
        await run(["umount", target]);
      } catch {
        mounted = false;
      }
    }
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("remove-paths removes files and empty dirs, not full dirs; missing is done", async () => {
  const f = await fixture();
  try {
    const empty = `${f.tmp}/cg-empty`;
    const file = `${f.tmp}/leftover`;
    const full = `${f.tmp}/cg-full`;
    await Deno.mkdir(empty);
    await Deno.writeTextFile(file, "x");
    await Deno.mkdir(full);
    await Deno.writeTextFile(`${full}/keep`, "x");
    const cleaner = f.cleaner();

    const out = await cleaner.clean(f.record({ paths: [empty, file, `${f.tmp}/missing`, full] }));
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "remove-paths");
    assert.ok(!(await exists(empty)) && !(await exists(file)));
    assert.equal(await Deno.readTextFile(`${full}/keep`), "x");

    const relative = await cleaner.clean(f.record({ paths: ["cg/relative"] }));
    assert.equal(relative.failedStep, "remove-paths");
    assert.match(relative.error ?? "", /not absolute/);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a symlinked state dir is refused and its target survives", async () => {
  const f = await fixture();
  try {
    const target = `${f.tmp}/target`;
    await Deno.mkdir(target);
    await Deno.writeTextFile(`${target}/precious`, "x");
    const link = `${f.stateRoot}/fakert/c2`;
    await Deno.symlink(target, link);
    const out = await f.cleaner().clean(f.record({ id: "c2", stateDir: link }));
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "remove-state-dir");
    assert.match(out.error ?? "", /symlink/);
    assert.equal(await Deno.readTextFile(`${target}/precious`), "x");
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});

/** A `sleep` frozen in a fresh cgroup v1 freezer (state D), and how to let it go. */
async function frozenSleep(): Promise<{ child: Deno.ChildProcess; release(): Promise<void> }> {
  const dir = `/sys/fs/cgroup/freezer/reaperd-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir);
  const child = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
  const release = async () => {
    await Deno.writeTextFile(`${dir}/freezer.state`, "THAWED").catch(() => {});
    await killAndWait(child);
    for (let i = 0; i < 100 && Deno.readTextFileSync(`${dir}/cgroup.procs`) !== ""; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await Deno.remove(dir);
  };
  try {
    await Deno.writeTextFile(`${dir}/cgroup.procs`, String(child.pid));
    await Deno.writeTextFile(`${dir}/freezer.state`, "FROZEN");
    for (let i = 0; i < 200 && readProcStat(child.pid)?.state !== "D"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(readProcStat(child.pid)?.state, "D");
  } catch (e) {
    await release();
    throw e;
  }
  return { child, release };
}

withFreezerV1.test("a frozen container process the runtime cannot resume is thawed directly and killed", async () => {
  const f = await fixture();
  const frozen = await frozenSleep();
  try {
    const c = identify(frozen.child.pid);
    assert.ok(c !== null);
    // The fake runtime answers "container not paused" to resume, as runc does for a container
    // frozen behind its back.
    const out = await f.cleaner().clean(f.record({ pid: c.pid, startTime: c.startTime }));
    assert.equal(out.ok, true, out.error ?? "");
    assert.match(out.steps[1]?.stderrTail ?? "", /resume: .*not paused/);
    assert.match(
      out.steps[1]?.stderrTail ?? "",
      /thawed \/sys\/fs\/cgroup\/freezer\/.*freezer\.state/,
    );
    assert.equal((await frozen.child.status).signal, "SIGKILL");
  } finally {
    await frozen.release();
    await Deno.remove(f.tmp, { recursive: true });
  }
});

withFreezerV1.test("a container process that stays in D after SIGKILL fails the pass with its state", async () => {
  const f = await fixture();
  const frozen = await frozenSleep();
  try {
    const c = identify(frozen.child.pid);
    assert.ok(c !== null);
    // No thaw: the task stays frozen, the SIGKILL stays pending.
    const cleaner = new RuntimeCleaner({
      runtimes: { fakert: { path: FAKE_RUNTIME, args: ["--fake-dir", f.fakeDir] } },
      settings: { ...defaultCleanupSettings(f.stateRoot), killChecks: 5, killCheckIntervalMs: 10 },
      thaw: () => ({ thawed: [], errors: [] }),
    });
    const out = await cleaner.clean(f.record({ pid: c.pid, startTime: c.startTime }));
    assert.equal(out.ok, false);
    assert.equal(out.failedStep, "kill-container");
    assert.equal(out.procState, "D");
    assert.match(out.error ?? "", /still alive after SIGKILL \(state D\)/);
    assert.deepEqual(out.steps.map((s) => s.step), ["kill-shim", "kill-container"]);
    assert.ok(await exists(f.stateDir));
  } finally {
    await frozen.release();
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("runtime kill runs only while the init may run; delete --force always runs", async (t) => {
  const f = await fixture();
  const sleeper = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
  try {
    const root = `${f.stateDir}/fakert`;
    const cleaner = f.cleaner();
    const skip = (out: Awaited<ReturnType<RuntimeCleaner["clean"]>>) =>
      out.steps.find((s) => s.step === "runtime-kill");

    await t.step("init known and dead: kill skipped, with why", async () => {
      const dead = new Deno.Command("/bin/true", { stdin: "null" }).spawn();
      await dead.status;
      const out = await cleaner.clean(f.record({ pid: dead.pid, startTime: 12345 }));
      assert.equal(out.ok, true, out.error ?? "");
      assert.equal(skip(out)?.skipped, true);
      assert.equal(skip(out)?.ok, true);
      assert.match(skip(out)?.stderrTail ?? "", /skipped: container process \d+ is not running/);
      assert.deepEqual(await f.argvLog(), [`--root ${root} delete --force c1`]);
    });

    await t.step("identity unknown: kill runs, by container id", async () => {
      await Deno.mkdir(`${root}/c1`, { recursive: true });
      await Deno.remove(`${f.fakeDir}/argv.log`);
      const out = await cleaner.clean(f.record({ pid: 4242, startTime: 0 }));
      assert.equal(out.ok, true, out.error ?? "");
      assert.equal(skip(out)?.skipped, undefined);
      assert.deepEqual(await f.argvLog(), [
        `--root ${root} kill c1 9`,
        `--root ${root} delete --force c1`,
      ]);
      const killContainer = out.steps.find((s) => s.step === "kill-container");
      assert.equal(killContainer?.skipped, true);
      assert.match(killContainer?.stderrTail ?? "", /identity is unknown: never signalled/);
    });

    await t.step("init alive when the step comes: kill runs", async () => {
      await Deno.mkdir(`${root}/c1`, { recursive: true });
      await Deno.remove(`${f.fakeDir}/argv.log`);
      const id = identify(sleeper.pid)!;
      const out = await runtimeKill.run({
        record: f.record({ pid: id.pid, startTime: id.startTime }),
        runtime: {
          name: "fakert",
          spec: { path: FAKE_RUNTIME, args: ["--fake-dir", f.fakeDir] },
          kind: oci,
          stateDir: f.stateDir,
        },
        settings: defaultCleanupSettings(f.stateRoot),
        run: runCommand,
        sleep: () => Promise.resolve(),
        thaw: () => ({ thawed: [], errors: [] }),
      });
      assert.equal(out.ok, true, out.detail);
      assert.equal(out.skipped, undefined);
      assert.deepEqual(await f.argvLog(), [`--root ${root} kill c1 9`]);
      assert.ok(isAlive(id), "runtime kill is by container id: the sleep is not its container");
    });
  } finally {
    await killAndWait(sleeper);
    await Deno.remove(f.tmp, { recursive: true });
  }
});

Deno.test("a kind defined in a file of its own plans, roots and reads answers its own way", async () => {
  const f = await fixture("odd");
  try {
    const spec = { path: FAKE_RUNTIME, args: ["--fake-dir", f.fakeDir], kind: testKind.name };
    await Deno.writeTextFile(`${f.fakeDir}/missing`, "");
    await Deno.mkdir(`${f.stateDir}/odd.d`);
    const out = await f.cleaner({ odd: spec }).clean(f.record());
    // fake_runtime.sh says "does not exist", which this kind does not take for "not there".
    assert.equal(out.ok, false);
    assert.deepEqual(out.steps.map((s) => s.step), ["runtime-delete"]);
    assert.deepEqual(await f.argvLog(), [`--root ${f.stateDir}/odd.d delete --force c1`]);
  } finally {
    await Deno.remove(f.tmp, { recursive: true });
  }
});
