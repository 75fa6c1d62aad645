/**
 * The collector's {@linkcode Cleaner} (src/gc/cleaner.ts): given a container record, find its
 * runtime in the config and run that runtime's cleanup plan once. The collector decides when
 * to call again.
 *
 * @module
 */

import type { Cleaner, CleanupOutcome } from "../gc/cleaner.ts";
import { type CommandRunner, runCommand } from "../sys/command.ts";
import type { ContainerRecord } from "../types.ts";
import type { CleanupSettings, RuntimeTable } from "./config.ts";
import { thawProcess, type ThawReport } from "./freezer.ts";
import { DEFAULT_KIND, kindNamed, kindNames } from "./kinds/mod.ts";
import { refusedOutcome, runPlan } from "./plan.ts";
import { idProblem, StateLayout } from "../identity.ts";

/** What a {@linkcode RuntimeCleaner} is built from. */
export interface RuntimeCleanerOptions {
  /** The configured runtimes (name → binary, leading args, kind). */
  runtimes: RuntimeTable;
  /** State root, timeouts, kill checks. */
  settings: CleanupSettings;
  /** Where state dirs are; `<stateRoot>/<runtime>/<id>` unless given. */
  layout?: StateLayout;
  /** How helpers are run; {@linkcode runCommand} unless a test swaps it. */
  run?: CommandRunner;
  /** How steps wait between checks; a real timer unless a test swaps it. */
  sleep?: (ms: number) => Promise<void>;
  /** How a freezer is thawed; {@linkcode thawProcess} unless a test swaps it. */
  thaw?: (pid: number) => ThawReport;
}

/**
 * Runs cleanup plans. One instance serves every container; `clean` calls for different
 * containers may run at the same time.
 *
 * @example
 * ```ts ignore
 * import { RuntimeCleaner } from "./cleaner.ts";
 * import { defaultCleanupSettings } from "./config.ts";
 * const cleaner = new RuntimeCleaner({
 *   runtimes: { runc: { path: "/usr/sbin/runc", args: [], kind: "oci" } },
 *   settings: defaultCleanupSettings("/var/run/isulad"),
 * });
 * const outcome = await cleaner.clean(record);
 * if (!outcome.ok) console.log(outcome.failedStep, outcome.error);
 * ```
 */
export class RuntimeCleaner implements Cleaner {
  readonly #runtimes: RuntimeTable;
  readonly #settings: CleanupSettings;
  readonly #run: CommandRunner;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #layout: StateLayout;
  readonly #thaw: (pid: number) => ThawReport;

  /** Builds a cleaner; nothing runs until {@linkcode RuntimeCleaner.clean}. */
  constructor(options: RuntimeCleanerOptions) {
    this.#runtimes = options.runtimes;
    this.#settings = options.settings;
    this.#run = options.run ?? runCommand;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#layout = options.layout ?? new StateLayout(options.settings.stateRoot);
    this.#thaw = options.thaw ?? thawProcess;
  }

  /** Runs one cleanup pass for `record`. Never throws; a failure is in the outcome. */
  async clean(record: ContainerRecord): Promise<CleanupOutcome> {
    const spec = Object.hasOwn(this.#runtimes, record.runtime)
      ? this.#runtimes[record.runtime]
      : undefined;
    if (spec === undefined) {
      const known = Object.keys(this.#runtimes).sort().join(", ") || "none";
      return refusedOutcome(
        `unknown runtime "${record.runtime}" for container ${record.id}: not in the runtimes ` +
          `config (configured: ${known})`,
      );
    }
    const bad = recordProblem(record, this.#layout);
    if (bad !== null) {
      return refusedOutcome(`cannot clean container ${JSON.stringify(record.id)}: ${bad}`);
    }
    const kind = kindNamed(spec.kind ?? DEFAULT_KIND);
    if (kind === undefined) {
      return refusedOutcome(
        `runtime "${record.runtime}" has kind "${spec.kind}", which reaperd does not know ` +
          `(known: ${kindNames().join(", ")})`,
      );
    }
    return await runPlan(kind.plan(), {
      record,
      runtime: {
        name: record.runtime,
        spec,
        kind,
        stateDir: record.stateDir.replace(/\/+$/, ""),
      },
      settings: this.#settings,
      run: this.#run,
      sleep: this.#sleep,
      thaw: this.#thaw,
    });
  }
}

/**
 * Why a record cannot be cleaned as it is, or null. Its id reaches runtime argv, and its state
 * dir is removed: it must be exactly the container's own, never a parent of another's.
 */
function recordProblem(record: ContainerRecord, layout: StateLayout): string | null {
  const bad = idProblem(record.id);
  if (bad !== null) return `container id ${bad}`;
  return layout.problem(record.stateDir, record.runtime, record.id);
}
