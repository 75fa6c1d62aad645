/**
 * The runtimes cleanup may call and the knobs of a cleanup pass. A runtime is a name mapped to
 * a binary and its leading arguments; nothing else in reaperd knows runc from crun. Reading
 * and validating the config file is src/config.ts's job.
 *
 * @module
 */

/**
 * How to call one OCI runtime: one entry of the config's `runtimes` map, keyed by the runtime's
 * name. The config loader's `RuntimeConfig` (src/config.ts) fits it as is.
 */
export interface RuntimeSpec {
  /** Absolute path of the runtime binary ("/usr/sbin/runc"). */
  path: string;
  /** Arguments placed before everything else, `--root` and the subcommand included. */
  args: string[];
  /**
   * Whether to pass `--root <stateDir>/<name>`. When absent: true, except for runtimes whose
   * name starts with "kata", which take no `--root` (as in iSulad).
   */
  root?: boolean;
}

/** The `runtimes` map of the config: runtime name → how to call it. */
export type RuntimeTable = Record<string, RuntimeSpec>;

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

/** Default timeout of one runtime call (ms). */
export const DEFAULT_STEP_TIMEOUT_MS = 10_000;

/** Settings with the defaults (10 s per runtime call, 10 × 100 ms kill checks). */
export function defaultCleanupSettings(stateRoot: string): CleanupSettings {
  return {
    stateRoot,
    stepTimeoutMs: DEFAULT_STEP_TIMEOUT_MS,
    killChecks: 10,
    killCheckIntervalMs: 100,
    stderrTailChars: 2048,
  };
}

/** Whether calls to this runtime get `--root <stateDir>/<name>` (see {@linkcode RuntimeSpec}). */
export function usesRootFlag(name: string, spec: RuntimeSpec): boolean {
  return spec.root ?? !name.startsWith("kata");
}
