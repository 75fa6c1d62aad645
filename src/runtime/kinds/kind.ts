/**
 * A runtime kind: what sets one family of runtimes apart in cleanup. Each kind is one file in
 * this folder that calls {@linkcode defineKind}; the config names a runtime's kind (`oci` when
 * it does not), and the cleaner asks {@linkcode kindNamed} for it. Nothing else in reaperd
 * knows one kind from another.
 *
 * @module
 */

import type { CleanupStep } from "../plan.ts";
import type { CallRules } from "../runtime_cli.ts";

/** One kind of runtime (`oci`: runc, crun; `kata`). */
export interface RuntimeKind extends CallRules {
  /** The name a runtime's config entry gives as its `kind`. */
  readonly name: string;
  /** The cleanup plan of a container of this kind, in order. */
  plan(): CleanupStep[];
}

/** The kind a runtime has when its config entry names none. */
export const DEFAULT_KIND = "oci";

const kinds = new Map<string, RuntimeKind>();

/** Makes `kind` known by its name; a second kind of the same name is an error. */
export function defineKind(kind: RuntimeKind): RuntimeKind {
  if (kinds.has(kind.name)) throw new Error(`runtime kind ${kind.name} is defined twice`);
  kinds.set(kind.name, kind);
  return kind;
}

/** The kind called `name`, or undefined when no file defines it. */
export function kindNamed(name: string): RuntimeKind | undefined {
  return kinds.get(name);
}

/** The names of every known kind, sorted (for error messages). */
export function kindNames(): string[] {
  return [...kinds.keys()].sort();
}
