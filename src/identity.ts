/**
 * Who a container is, as reaperd admits it: the one owner of the rules for a container id, a
 * runtime name, an absolute path, the container's state dir under the state root, and a
 * process named by (pid, start time). The socket API, the config file, the store and the
 * cleaner all ask here, so that "valid" means the same thing everywhere.
 *
 * Each rule is a `…Problem` function: null when the value is fine, else the reason as the
 * rest of a sentence whose subject the caller names (`id must not be empty`), so that every
 * surface wraps it in its own error type and field name.
 *
 * @module
 */

import { isValidPid } from "./sys/proc.ts";

/** Longest name of one directory entry (NAME_MAX): an id is one component of its state dir. */
const NAME_MAX = 255;
/** Longest path accepted anywhere (PATH_MAX is 4096 with the final NUL). */
const MAX_PATH_BYTES = 4095;
/** Longest container id: it must fit one path component. */
export const MAX_ID_LENGTH = NAME_MAX;
/** Longest runtime name. */
const MAX_RUNTIME_NAME_LENGTH = 64;
/** The file in a state dir that reaperd creates (the exit FIFO): the deepest path it makes. */
const FIFO_NAME = "exit_fifo";
/** The state dir layout iSulad uses, and reaperd's default. */
export const DEFAULT_STATE_DIR_PATTERN = "{stateRoot}/{runtime}/{id}";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const encoder = new TextEncoder();

/** Shows an offending value in an error without letting a 10,000-char value flood the line. */
export function showValue(value: unknown): string {
  let text: string;
  if (value === undefined) return "nothing";
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 60)}…(${text.length} chars)` : text;
}

/** The length of `text` in UTF-8 bytes, which is what the kernel's limits count. */
export function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/** Whether `text` is at most `max` UTF-8 bytes; encodes only a text that could be longer. */
function fitsBytes(text: string, max: number): boolean {
  // A UTF-16 code unit is at most 3 bytes in UTF-8 (a surrogate pair, 2 units, is 4).
  return text.length * 3 <= max || byteLength(text) <= max;
}

/**
 * Why `value` is not a valid container id, or null when it is. Valid: 1–255 characters of
 * `[A-Za-z0-9_.-]`, starting with a letter or digit, never containing `..`. An id becomes a
 * path component (`<stateRoot>/<runtime>/<id>`) and a runtime argument, so nothing that could
 * climb a directory, smuggle a flag or never fit a directory entry gets in.
 *
 * @example
 * ```ts
 * import { idProblem } from "./identity.ts";
 * console.assert(idProblem("web-1") === null);
 * console.assert(idProblem("../etc") !== null);
 * ```
 */
export function idProblem(value: unknown): string | null {
  return nameProblem(value, MAX_ID_LENGTH);
}

/** Why `value` is not a valid runtime name (same alphabet as ids, at most 64), or null. */
export function runtimeNameProblem(value: unknown): string | null {
  return nameProblem(value, MAX_RUNTIME_NAME_LENGTH);
}

function nameProblem(value: unknown, max: number): string | null {
  if (typeof value !== "string") return `must be a string, got ${showValue(value)}`;
  if (value.length === 0) return "must not be empty";
  if (value.length > max) return `must be at most ${max} characters, got ${value.length}`;
  if (!ID_RE.test(value)) {
    return `must be letters, digits, '_', '.' or '-', starting with a letter or digit, got ${
      showValue(value)
    }`;
  }
  if (value.includes("..")) return `must not contain "..", got ${showValue(value)}`;
  return null;
}

/**
 * Why `value` is not an acceptable absolute path, or null. Accepted: a string starting with
 * `/`, without NUL or control characters, without `.` or `..` components (a path the daemon
 * may remove must mean what it says), at most `maxBytes` bytes (4095 by default).
 */
export function absolutePathProblem(value: unknown, maxBytes = MAX_PATH_BYTES): string | null {
  if (typeof value !== "string") return `must be a string, got ${showValue(value)}`;
  if (!value.startsWith("/")) return `must be an absolute path, got ${showValue(value)}`;
  if (CONTROL_RE.test(value)) {
    return `must not contain NUL or control characters, got ${showValue(value)}`;
  }
  if (value.split("/").some((part) => part === "." || part === "..")) {
    return `must not contain "." or ".." components, got ${showValue(value)}`;
  }
  if (!fitsBytes(value, maxBytes)) {
    return `must be at most ${maxBytes} bytes, got ${byteLength(value)}`;
  }
  if (!fitsBytes(value, NAME_MAX) && value.split("/").some((part) => !fitsBytes(part, NAME_MAX))) {
    return `must not have a component longer than ${NAME_MAX} bytes`;
  }
  return null;
}

/** Why `value` is not a pid (an integer from 1 to 2^30 - 1), or null. */
export function pidProblem(value: unknown): string | null {
  return isValidPid(value) ? null : `must be a positive integer, got ${showValue(value)}`;
}

/** Why `value` is not a shim pid: a pid, or 0 for "no shim". Null when it is one. */
export function ppidProblem(value: unknown): string | null {
  return value === 0 || isValidPid(value)
    ? null
    : `must be a positive integer (or 0 for no shim), got ${showValue(value)}`;
}

/** Why `value` is not a start time (clock ticks since boot, 0 = unknown), or null. */
export function startTimeProblem(value: unknown): string | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? null
    : `must be a non-negative integer (clock ticks), got ${showValue(value)}`;
}

/**
 * True when (pid, start time) names one process for sure. A start time of 0 means "unknown"
 * (an init that was gone before it could be identified, a container adopted from the state
 * root): such a process is never signalled by pid, since the pid may belong to anyone now.
 */
export function isKnownProcess(process: { pid: number; startTime: number }): boolean {
  return isValidPid(process.pid) && process.startTime > 0;
}

/** What a {@linkcode StateLayout} found in a state dir's path. */
export interface StateDirParts {
  runtime: string;
  id: string;
}

/**
 * Why `pattern` cannot be a state dir layout, or null. A layout starts with `{stateRoot}`,
 * holds `{id}` once as a whole component, and otherwise only literal components or a whole
 * `{runtime}`. Every container's dir then has the same depth, so none is ever a parent of
 * another's, and two ids never share one.
 */
export function statePatternProblem(pattern: unknown): string | null {
  if (typeof pattern !== "string") return `must be a string, got ${showValue(pattern)}`;
  const parts = pattern.split("/");
  if (parts[0] !== "{stateRoot}") {
    return `must start with "{stateRoot}/", got ${showValue(pattern)}`;
  }
  const rest = parts.slice(1);
  if (rest.filter((p) => p === "{id}").length !== 1) {
    return `must hold "{id}" once, as a whole path component, got ${showValue(pattern)}`;
  }
  for (const part of rest) {
    if (part === "{id}" || part === "{runtime}") continue;
    if (part.includes("{") || part.includes("}")) {
      return `may only use {stateRoot}, {runtime} and {id} as whole components, got ${
        showValue(pattern)
      }`;
    }
    if (nameProblem(part, NAME_MAX) !== null) {
      return `has a component ${showValue(part)} that is not a plain name`;
    }
  }
  return null;
}

/**
 * Where a container's state dir is: `<stateRoot>/<runtime>/<id>` by default, or another
 * layout (see {@linkcode statePatternProblem}). The state dir a request names must be exactly
 * this one: a dir that is a parent of other containers' dirs would have their state removed
 * with its own.
 *
 * @example
 * ```ts
 * import { StateLayout } from "./identity.ts";
 * const layout = new StateLayout("/var/run/isulad");
 * console.assert(layout.dirOf("runc", "c1") === "/var/run/isulad/runc/c1");
 * console.assert(layout.problem("/var/run/isulad/runc", "runc", "c1") !== null);
 * ```
 */
export class StateLayout {
  /** The state root, without a trailing slash. */
  readonly root: string;
  readonly #parts: readonly string[];

  /** Throws a TypeError when `pattern` is not a layout (the config checks it first). */
  constructor(stateRoot: string, pattern: string = DEFAULT_STATE_DIR_PATTERN) {
    const problem = statePatternProblem(pattern);
    if (problem !== null) throw new TypeError(`state dir pattern ${problem}`);
    this.root = stateRoot.replace(/\/+$/, "");
    this.#parts = pattern.split("/").slice(1);
  }

  /**
   * The layout's components below the state root, in order: `{runtime}`, `{id}` or a literal
   * name (for walking the state root).
   */
  get components(): readonly string[] {
    return this.#parts;
  }

  /** The state dir of container `id` of `runtime`. */
  dirOf(runtime: string, id: string): string {
    const parts = this.#parts.map((p) => p === "{id}" ? id : p === "{runtime}" ? runtime : p);
    return [this.root, ...parts].join("/");
  }

  /**
   * Why `stateDir` is not the state dir of container `id` of `runtime`, or null. A trailing
   * slash is allowed; anything else must match to the byte.
   */
  problem(stateDir: string, runtime: string, id: string): string | null {
    const want = this.dirOf(runtime, id);
    const dir = stateDir.replace(/\/+$/, "");
    if (dir !== want) {
      const outside = dir.startsWith(`${this.root}/`) ? "" : ", not inside the state root";
      return `stateDir must be ${want} (the state dir of ${runtime} container ${id}), got ${
        showValue(stateDir)
      }${outside}`;
    }
    return this.#lengthProblem(want);
  }

  /**
   * The runtime and id a state dir belongs to, or the reason it is no container's state dir
   * (for requests that name only the dir, like create-fifo).
   */
  parse(stateDir: string): StateDirParts | string {
    const dir = stateDir.replace(/\/+$/, "");
    const expected = this.dirOf("<runtime>", "<id>");
    // Built only for an answer that uses it: this runs for every create-fifo.
    const bad = () =>
      `stateDir must be a container's state dir ${expected}, got ${showValue(stateDir)}`;
    if (!dir.startsWith(`${this.root}/`)) {
      return `stateDir ${showValue(stateDir)} is not inside the state root ${this.root}: ` +
        `it must be ${expected}`;
    }
    const parts = dir.slice(this.root.length + 1).split("/");
    if (parts.length !== this.#parts.length) return bad();
    let runtime: string | undefined;
    let id = "";
    for (const [i, want] of this.#parts.entries()) {
      const got = parts[i]!;
      if (want === "{id}") {
        const problem = idProblem(got);
        if (problem !== null) return `${bad()}: id ${problem}`;
        id = got;
      } else if (want === "{runtime}") {
        const problem = runtimeNameProblem(got);
        if (problem !== null) return `${bad()}: runtime ${problem}`;
        if (runtime !== undefined && runtime !== got) return bad();
        runtime = got;
      } else if (got !== want) {
        return bad();
      }
    }
    const length = this.#lengthProblem(dir);
    return length ?? { runtime: runtime ?? "", id };
  }

  /** A dir whose exit FIFO's path would not fit PATH_MAX cannot be used. */
  #lengthProblem(dir: string): string | null {
    const fifo = `${dir}/${FIFO_NAME}`;
    if (fitsBytes(fifo, MAX_PATH_BYTES)) return null;
    return `stateDir ${showValue(dir)} is too long: its exit FIFO's path would be ` +
      `${byteLength(fifo)} bytes (at most ${MAX_PATH_BYTES})`;
  }
}
