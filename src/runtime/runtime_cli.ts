/**
 * How to spell a call to a runtime's command line, and how to read its answer. runc, crun and
 * kata share the verbs (`kill`, `delete`, `resume`); where they keep state (`--root`) and how
 * they say that a container is not there is their kind's business (kinds/).
 *
 * @module
 */

import type { RuntimeConfig } from "./config.ts";

/**
 * What a call needs to know of a runtime's kind: where it keeps state and how it says a
 * container is not there. Every `RuntimeKind` (kinds/kind.ts) is one.
 */
export interface CallRules {
  /** The `--root` for runtime `runtime` and a container's state dir; null when it takes none. */
  root(runtime: string, stateDir: string): string | null;
  /** What the runtime prints when the container does not exist (nothing left to do). */
  readonly notThere: readonly RegExp[];
  /** What it prints when the container exists but nothing of it runs. */
  readonly notRunning: readonly RegExp[];
}

/** One runtime as a container's cleanup calls it. */
export interface RuntimeCall {
  /** The runtime's name (the config key): also the `--root` dir's last component. */
  name: string;
  /** Its binary and leading arguments. */
  spec: RuntimeConfig;
  /** Its kind, from `spec.kind`. */
  kind: CallRules;
  /** The container's state dir, `<stateRoot>/<runtime>/<id>`. */
  stateDir: string;
}

/** The runtime's `--root`, or null for runtimes that take none (as their kind or spec says). */
export function runtimeRoot(call: RuntimeCall): string | null {
  const root = call.kind.root(call.name, call.stateDir);
  if (call.spec.root === false) return null;
  return root ?? (call.spec.root === true ? `${call.stateDir}/${call.name}` : null);
}

/**
 * The argv of `<path> [args] [--root <root>] <subcommand...>`.
 *
 * @example
 * ```ts
 * import { runtimeArgv } from "./runtime_cli.ts";
 * import { oci } from "./kinds/mod.ts";
 * const argv = runtimeArgv({
 *   name: "runc",
 *   spec: { path: "/usr/sbin/runc", args: [], kind: "oci" },
 *   kind: oci,
 *   stateDir: "/run/s/runc/c1",
 * }, ["kill", "c1", "9"]);
 * console.assert(argv.join(" ") === "/usr/sbin/runc --root /run/s/runc/c1/runc kill c1 9");
 * ```
 */
export function runtimeArgv(call: RuntimeCall, subcommand: string[]): string[] {
  const root = runtimeRoot(call);
  return [
    call.spec.path,
    ...call.spec.args,
    ...(root === null ? [] : ["--root", root]),
    ...subcommand,
  ];
}

/** True when a runtime's output says the container does not exist (so there is nothing to do). */
export function saysNotThere(kind: CallRules, output: string): boolean {
  return kind.notThere.some((re) => re.test(output));
}

/** True when a runtime's output says the container exists but has no running process. */
export function saysNotRunning(kind: CallRules, output: string): boolean {
  return kind.notRunning.some((re) => re.test(output));
}

/** The last `max` characters of `text`, trimmed, for step records. */
export function tail(text: string, max: number): string {
  const t = text.trim();
  return t.length <= max ? t : "…" + t.slice(t.length - max + 1);
}
