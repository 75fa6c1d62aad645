/**
 * How to spell a call to an OCI runtime's command line, and how to read its answer. runc,
 * crun and kata share the verbs (`kill`, `delete`, `resume`); they differ only in where they
 * keep state (`--root`) and in how they say that a container is not there.
 *
 * @module
 */

import { type RuntimeSpec, usesRootFlag } from "./config.ts";

/** One runtime as a container's cleanup calls it. */
export interface RuntimeCall {
  /** The runtime's name (the config key): also the `--root` dir's last component. */
  name: string;
  /** Its binary and leading arguments. */
  spec: RuntimeSpec;
  /** The container's state dir, `<stateRoot>/<runtime>/<id>`. */
  stateDir: string;
}

/** `<stateDir>/<name>`, the runtime's `--root`, or null for runtimes that take none (kata). */
export function runtimeRoot(call: RuntimeCall): string | null {
  return usesRootFlag(call.name, call.spec) ? `${call.stateDir}/${call.name}` : null;
}

/**
 * The argv of `<path> [args] [--root <stateDir>/<name>] <subcommand...>`.
 *
 * @example
 * ```ts
 * import { runtimeArgv } from "./runtime_cli.ts";
 * const argv = runtimeArgv(
 *   { name: "runc", spec: { path: "/usr/sbin/runc", args: [] }, stateDir: "/run/s/runc/c1" },
 *   ["kill", "c1", "9"],
 * );
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

// runc/kata: "container does not exist"; crun: "error opening file `<root>/<id>/status`: No
// such file or directory"; iSulad also shields "chdir <workdir> failed" (the state dir is gone).
const NOT_THERE = [
  /does not exist/i,
  /no such container/i,
  /error opening file `[^`]*\/status`: No such file or directory/,
  /chdir .* failed/,
];

// runc: "container not running"; crun and others report the process being gone.
const NOT_RUNNING = [
  /not running/i,
  /process already finished/i,
  /no such process/i,
];

/** True when a runtime's output says the container does not exist (so there is nothing to do). */
export function saysNotThere(output: string): boolean {
  return NOT_THERE.some((re) => re.test(output));
}

/** True when a runtime's output says the container exists but has no running process. */
export function saysNotRunning(output: string): boolean {
  return NOT_RUNNING.some((re) => re.test(output));
}

/** The last `max` characters of `text`, trimmed, for step records. */
export function tail(text: string, max: number): string {
  const t = text.trim();
  return t.length <= max ? t : "…" + t.slice(t.length - max + 1);
}
