/**
 * The runtimes cleanup may call and the knobs of a cleanup pass. A runtime is a name mapped to
 * a binary, its leading arguments and its kind (kinds/); nothing else in reaperd knows runc
 * from kata. Reading and validating the config file is src/config.ts's job; this is the one
 * shape of a runtime entry, which the config file fills in.
 *
 * @module
 */

/** How to call one runtime: one entry of the config's `runtimes` map, keyed by its name. */
export interface RuntimeConfig {
  /** Absolute path of the runtime binary ("/usr/sbin/runc"). */
  path: string;
  /** Arguments placed before everything else (before `--root`), e.g. a `--config` for kata. */
  args: string[];
  /** Its kind (kinds/): "oci" (runc, crun…) when absent, or "kata". */
  kind?: string;
  /** Whether to pass `--root`: when absent, as its kind says (oci: yes, kata: no). */
  root?: boolean;
}

/** The `runtimes` map of the config: runtime name → how to call it. */
export type RuntimeTable = Record<string, RuntimeConfig>;

/** How one cleanup pass behaves. */
export interface CleanupSettings {
  /** The state root (`/var/run/isulad`); cleanup removes no state dir outside it. */
  stateRoot: string;
  /** SIGKILL a runtime call that runs longer than this (ms). */
  stepTimeoutMs: number;
  /** After SIGKILLing the container process, look this many times whether it died… */
  killChecks: number;
  /** …this many ms apart. */
  killCheckIntervalMs: number;
  /** Keep at most this many characters of a failing step's stderr. */
  stderrTailChars: number;
}

/** Default timeout of one cleanup step (ms), the config's `gc.stepTimeoutMs` too. */
export const DEFAULT_STEP_TIMEOUT_MS = 30_000;

/** Settings with the defaults (30 s per step, 10 × 100 ms kill checks). */
export function defaultCleanupSettings(stateRoot: string): CleanupSettings {
  return {
    stateRoot,
    stepTimeoutMs: DEFAULT_STEP_TIMEOUT_MS,
    killChecks: 10,
    killCheckIntervalMs: 100,
    stderrTailChars: 2048,
  };
}
