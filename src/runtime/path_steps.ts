/**
 * The cleanup steps that touch a container's own paths: unmount the registered mounts, remove
 * the registered paths, remove the state dir. The daemon never makes these filesystem calls
 * itself: each path goes to a path helper process (path_helper.ts) with the step timeout, so a
 * filesystem that never answers hangs a helper, which is killed (and, stuck in D state, left
 * behind and reported), while the daemon goes on. Every path is resolved without following
 * symlinks (path_ops.ts), and one that cannot be is refused as a failed step with the reason.
 *
 * @module
 */

import { PathHelperPool, type PathRunner, type PathRunResult } from "./path_helper.ts";
import type { PathOp } from "./path_ops.ts";
import type { CleanupStep, StepContext, StepOutcome } from "./plan.ts";

let shared: PathHelperPool | null = null;

/** The daemon-wide helper pool, started on first use. */
export function sharedPathHelpers(): PathRunner {
  shared ??= new PathHelperPool();
  return shared;
}

// A cgroup can refuse rmdir for a moment after its last task died.
const BUSY_RETRIES = 3;
const BUSY_RETRY_MS = 100;

function failedWith(notes: string[], r: PathRunResult): StepOutcome {
  return {
    ok: false,
    exitCode: null,
    detail: [...notes, r.detail].join("\n"),
    ...(r.procState === undefined ? {} : { procState: r.procState }),
  };
}

/**
 * The three path steps, run through `helpers` (the shared pool unless given): `unmount`
 * (every path in `record.mounts`, innermost first; EBUSY fails the pass), `remove-paths` (each
 * path in `record.paths`, not recursively: cgroup dirs are rmdir'ed) and `remove-state-dir`.
 */
export function pathSteps(helpers: () => PathRunner = sharedPathHelpers): CleanupStep[] {
  const run = (ctx: StepContext, op: PathOp) => helpers().run(op, ctx.settings.stepTimeoutMs);
  const unmountMounts: CleanupStep = {
    name: "unmount",
    fatal: true,
    async run(ctx) {
      const notes: string[] = [];
      for (const path of ctx.record.mounts) {
        const r = await run(ctx, { op: "unmount", path, root: ctx.settings.stateRoot });
        if (!r.ok) return failedWith(notes, r);
        notes.push(r.detail);
      }
      return { ok: true, exitCode: null, detail: notes.join("\n") || "no mounts recorded" };
    },
  };
  const removePaths: CleanupStep = {
    name: "remove-paths",
    fatal: true,
    async run(ctx) {
      const notes: string[] = [];
      for (const path of ctx.record.paths) {
        for (let attempt = 1;; attempt++) {
          const r = await run(ctx, { op: "remove", path, root: ctx.settings.stateRoot });
          if (r.ok) {
            notes.push(r.detail);
            break;
          }
          if (r.code === "EBUSY" && attempt < BUSY_RETRIES) {
            await ctx.sleep(BUSY_RETRY_MS);
            continue;
          }
          return failedWith(notes, r);
        }
      }
      return { ok: true, exitCode: null, detail: notes.join("\n") || "no paths recorded" };
    },
  };
  const removeStateDir: CleanupStep = {
    name: "remove-state-dir",
    fatal: true,
    async run(ctx) {
      const r = await run(ctx, {
        op: "remove-state-dir",
        dir: ctx.record.stateDir,
        root: ctx.settings.stateRoot,
      });
      return r.ok ? { ok: true, exitCode: null, detail: r.detail } : failedWith([], r);
    },
  };
  return [unmountMounts, removePaths, removeStateDir];
}
