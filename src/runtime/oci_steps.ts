/**
 * The default cleanup plan for OCI runtimes behind an isulad-shim (runc, crun, kata),
 * docs/architecture.md §6: kill the shim, kill the container process, `<rt> kill`,
 * `<rt> delete --force`, unmount, remove the registered paths, remove the state dir. Every
 * step checks before it acts, so a pass that repeats a step already done finds nothing to do
 * and succeeds.
 *
 * @module
 */

import { type CommandResult, isSuccess } from "../sys/command.ts";
import { readProcStat } from "../sys/proc.ts";
import { Signal, signalProcess } from "../sys/signal.ts";
import type { CleanupStep, StepContext, StepOutcome } from "./plan.ts";
import { runtimeArgv, runtimeRoot, saysNotRunning, saysNotThere } from "./runtime_cli.ts";
import { pathSteps } from "./path_steps.ts";
import { isKnownProcess } from "../identity.ts";

const done = (detail: string, exitCode: number | null = null): StepOutcome => ({
  ok: true,
  exitCode,
  detail,
});

const skipped = (why: string): StepOutcome => ({
  ok: true,
  exitCode: null,
  detail: `skipped: ${why}`,
  skipped: true,
});

const failed = (detail: string, exitCode: number | null = null): StepOutcome => ({
  ok: false,
  exitCode,
  detail,
});

/** 1. SIGKILL the shim, if (ppid, pStartTime) is still that shim. */
export const killShim: CleanupStep = {
  name: "kill-shim",
  fatal: true,
  run({ record }) {
    if (record.ppid === 0) return Promise.resolve(done("no shim recorded"));
    const shim = { pid: record.ppid, startTime: record.pStartTime };
    if (!isKnownProcess(shim)) {
      return Promise.resolve(
        skipped(`shim ${record.ppid}'s identity is unknown: never signalled by pid`),
      );
    }
    const outcome = signalProcess(shim, Signal.SIGKILL);
    return Promise.resolve(
      outcome === "signalled"
        ? done(`shim ${record.ppid} sent SIGKILL`)
        : outcome === "gone"
        ? done(`shim ${record.ppid} not running`)
        : done(`shim pid ${record.ppid} is not a valid pid; nothing to signal`),
    );
  },
};

/**
 * 2. If (pid, startTime) is alive: resume it through the runtime and thaw its freezer (a
 * frozen task ignores SIGKILL), SIGKILL it, and look a few times whether it died.
 */
export const killContainer: CleanupStep = {
  name: "kill-container",
  fatal: true,
  async run(ctx) {
    const { record, settings } = ctx;
    const id = { pid: record.pid, startTime: record.startTime };
    if (!isKnownProcess(id)) {
      return skipped(
        `container process ${record.pid}'s identity is unknown: never signalled by pid`,
      );
    }
    const before = livingState(id);
    if (before === null) return done(`container process ${record.pid} not running`);

    const notes: string[] = [];
    if (runtimeRootExists(ctx)) {
      const r = await ctx.run(runtimeArgv(ctx.runtime, ["resume", record.id]), {
        timeoutMs: settings.stepTimeoutMs,
      });
      // Resume fails for a container that is not paused; that is expected and only noted.
      notes.push(
        isSuccess(r) ? "resumed by the runtime" : `resume: ${describe(r, settings.stepTimeoutMs)}`,
      );
    }
    const thaw = ctx.thaw(record.pid);
    notes.push(...thaw.thawed.map((f) => `thawed ${f}`), ...thaw.errors);

    if (signalProcess(id, Signal.SIGKILL) !== "signalled") {
      return done([...notes, `container process ${record.pid} gone before SIGKILL`].join("\n"));
    }
    let state: string | null = before;
    for (let i = 0; i < settings.killChecks; i++) {
      await ctx.sleep(settings.killCheckIntervalMs);
      state = livingState(id);
      if (state === null) {
        return done([...notes, `container process ${record.pid} killed`].join("\n"));
      }
    }
    return {
      ok: false,
      exitCode: null,
      detail: [
        ...notes,
        `container process ${record.pid} still alive after SIGKILL (state ${state})`,
      ].join("\n"),
      ...(state === null ? {} : { procState: state }),
    };
  },
};

/**
 * The /proc state char of the process named by (pid, start time) while it is alive, else null.
 * A zombie has already died (only its parent's wait is missing) so, for killing, it counts as
 * dead: an orphan's zombie may sit forever under an init that does not reap.
 */
function livingState(id: { pid: number; startTime: number }): string | null {
  const stat = readProcStat(id.pid);
  if (stat === null || stat.startTime !== id.startTime || stat.state === "Z") return null;
  return stat.state;
}

/**
 * 3. `<rt> [args] --root <stateDir>/<rt> kill <id> 9`, only while something of the container
 * may still run: its init (pid, start time) is alive, or its identity is unknown. Once the init
 * is known dead, the delete that follows kills whatever is left; failing here is only a warning.
 */
export const runtimeKill: CleanupStep = {
  name: "runtime-kill",
  fatal: false,
  async run(ctx) {
    const init = { pid: ctx.record.pid, startTime: ctx.record.startTime };
    if (isKnownProcess(init) && livingState(init) === null) {
      return skipped(`container process ${init.pid} is not running; delete --force follows`);
    }
    if (!runtimeRootExists(ctx)) return done(`runtime root ${runtimeRoot(ctx.runtime)} is gone`);
    const r = await ctx.run(runtimeArgv(ctx.runtime, ["kill", ctx.record.id, "9"]), {
      timeoutMs: ctx.settings.stepTimeoutMs,
    });
    const kind = ctx.runtime.kind;
    const said = r.stderr + r.stdout;
    if (isSuccess(r)) return done(r.stderr, r.code);
    if (answered(r) && (saysNotThere(kind, said) || saysNotRunning(kind, said))) {
      return done(r.stderr + r.stdout, r.code);
    }
    return failed(describe(r, ctx.settings.stepTimeoutMs), r.code);
  },
};

/** 4. `<rt> [args] --root <stateDir>/<rt> delete --force <id>`; "does not exist" is done. */
export const runtimeDelete: CleanupStep = {
  name: "runtime-delete",
  fatal: true,
  async run(ctx) {
    if (!runtimeRootExists(ctx)) return done(`runtime root ${runtimeRoot(ctx.runtime)} is gone`);
    const r = await ctx.run(runtimeArgv(ctx.runtime, ["delete", "--force", ctx.record.id]), {
      timeoutMs: ctx.settings.stepTimeoutMs,
    });
    if (isSuccess(r)) return done(r.stderr, r.code);
    const said = r.stderr + r.stdout;
    if (answered(r) && saysNotThere(ctx.runtime.kind, said)) return done(said, r.code);
    return failed(describe(r, ctx.settings.stepTimeoutMs), r.code);
  },
};

/** The default OCI plan, in order. */
export function ociPlan(): CleanupStep[] {
  return [
    killShim,
    killContainer,
    runtimeKill,
    runtimeDelete,
    ...pathSteps(),
  ];
}

/**
 * True unless the runtime keeps its state under `--root <stateDir>/<rt>` and that dir is gone:
 * then the runtime cannot know the container, and calling it could only say so.
 */
function runtimeRootExists(ctx: StepContext): boolean {
  const root = runtimeRoot(ctx.runtime);
  if (root === null) return true;
  try {
    Deno.lstatSync(root);
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound);
  }
}

/** The runtime ran to its end by itself (not killed, not missing), so its words mean something. */
function answered(r: CommandResult): boolean {
  return !r.timedOut && r.error === null && r.signal === null;
}

/** Why a runtime call failed: what it said, then (last, where records take it from) the verdict. */
function describe(r: CommandResult, timeoutMs: number): string {
  const said = r.stderr.trim() || r.stdout.trim();
  const withSaid = (verdict: string) => said === "" ? verdict : `${said}\n${verdict}`;
  if (r.notFound) return `runtime binary ${r.argv[0]} not found`;
  if (r.error !== null) return r.error;
  if (r.timedOut) return withSaid(`${r.argv[0]} timed out after ${timeoutMs} ms and was killed`);
  if (r.signal !== null) return withSaid(`${r.argv[0]} killed by ${r.signal}`);
  return said === "" ? `${r.argv[0]} exited with code ${r.code}` : said;
}
