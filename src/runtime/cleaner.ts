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
import { ociPlan } from "./oci_steps.ts";
import { type CleanupStep, refusedOutcome, runPlan } from "./plan.ts";
import { stateDirPathProblem } from "./state_dir.ts";

/** What a {@linkcode RuntimeCleaner} is built from. */
export interface RuntimeCleanerOptions {
  /** The configured runtimes (name → binary and leading args). */
  runtimes: RuntimeTable;
  /** State root, timeouts, kill checks. */
  settings: CleanupSettings;
  /** How helpers are run; {@linkcode runCommand} unless a test swaps it. */
  run?: CommandRunner;
  /** How steps wait between checks; a real timer unless a test swaps it. */
  sleep?: (ms: number) => Promise<void>;
  /** The plan for a runtime; the default OCI plan for every runtime unless given. */
  plan?: (runtime: string) => CleanupStep[];
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
 *   runtimes: { runc: { path: "/usr/sbin/runc", args: [] } },
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
  readonly #plan: (runtime: string) => CleanupStep[];
  readonly #thaw: (pid: number) => ThawReport;

  /** Builds a cleaner; nothing runs until {@linkcode RuntimeCleaner.clean}. */
  constructor(options: RuntimeCleanerOptions) {
    this.#runtimes = options.runtimes;
    this.#settings = options.settings;
    this.#run = options.run ?? runCommand;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#plan = options.plan ?? (() => ociPlan());
    this.#thaw = options.thaw ?? thawProcess;
  }

  /** Runs one cleanup pass for `record`. Never throws; a failure is in the outcome. */
  async clean(record: ContainerRecord): Promise<CleanupOutcome> {
    const bad = recordProblem(record, this.#settings.stateRoot);
    if (bad !== null) {
      return refusedOutcome(`cannot clean container ${JSON.stringify(record.id)}: ${bad}`);
    }
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
    return await runPlan(this.#plan(record.runtime), {
      record,
      runtime: { name: record.runtime, spec, stateDir: record.stateDir.replace(/\/+$/, "") },
      settings: this.#settings,
      run: this.#run,
      sleep: this.#sleep,
      thaw: this.#thaw,
    });
  }
}

/** Why a record cannot be cleaned as it is, or null. Its id and dir reach runtime argv. */
function recordProblem(record: ContainerRecord, stateRoot: string): string | null {
  const { id } = record;
  if (typeof id !== "string" || id === "" || id.length > 256) {
    return `container id ${JSON.stringify(id)} is empty or too long`;
  }
  // An id starting with "-" would be read by the runtime as an option.
  if (id.startsWith("-") || /[/\0]/.test(id) || id === "." || id === "..") {
    return `container id ${JSON.stringify(id)} is not a valid id`;
  }
  return stateDirPathProblem(record.stateDir, stateRoot);
}
