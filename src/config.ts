/**
 * reaperd's configuration: defaults, the JSON config file, and the command-line overrides, in
 * that order of precedence (flags win). What a valid runtime name or path is comes from
 * identity.ts, as for every other surface.
 *
 * Every error names the key or flag it is about, in one line, because an operator reading a
 * journal line must be able to fix the file without reading code.
 *
 * @module
 */

import * as v from "valibot";
import { errorMessage } from "./error_message.ts";
import { intProblem, parseShape, rule, strict } from "./schema.ts";
import {
  absolutePathProblem,
  DEFAULT_STATE_DIR_PATTERN,
  runtimeNameProblem,
  showValue,
  statePatternProblem,
} from "./identity.ts";
import { DEFAULT_STEP_TIMEOUT_MS, type RuntimeConfig } from "./runtime/config.ts";
import { DEFAULT_KIND, kindNames } from "./runtime/kinds/mod.ts";

export type { RuntimeConfig };

/** Log levels, lowest first (the names @logtape/logtape uses). */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The garbage collector's knobs. */
export interface GcConfig {
  /** Cleanups run at the same time at most. */
  concurrency: number;
  /** First retry delay (ms); doubles per failed attempt, with jitter. */
  backoffBaseMs: number;
  /** Retry delay cap (ms). */
  backoffMaxMs: number;
  /** A cleanup step that runs longer than this (ms) is killed and counts as failed. */
  stepTimeoutMs: number;
}

/** The socket API's limits on its clients. */
export interface HttpConfig {
  /**
   * Client connections open at once at most; one more is answered 503 and closed. The daemon
   * also keeps this under its descriptor limit minus what its containers need.
   */
  maxConnections: number;
  /** A connection with no request under way for this long (ms) is closed. */
  idleTimeoutMs: number;
  /**
   * A whole answer (not an event stream) must be taken by the client within this (ms) from its
   * first byte; a client that reads slower is cut off, so it holds no connection for longer.
   */
  responseTimeoutMs: number;
}

/** The whole configuration, with every default filled in. */
export interface Config {
  /** Absolute path of the API's unix socket. */
  socket: string;
  /** Absolute path of the Deno KV database file. */
  db: string;
  /** Absolute path under which container state dirs live: `<stateRoot>/<runtime>/<id>`. */
  stateRoot: string;
  /**
   * Where in the state root a container's state dir is, for engines with another layout than
   * `{stateRoot}/{runtime}/{id}` (identity.ts `statePatternProblem` says what may be used).
   */
  stateDirPattern: string;
  /** Runtime name → how to call it. */
  runtimes: Record<string, RuntimeConfig>;
  /** Garbage collector knobs. */
  gc: GcConfig;
  /** Socket API limits. */
  http: HttpConfig;
  /** A FIFO read end held by create-fifo but never armed by monitor is released after this (ms). */
  heldFifoTimeoutMs: number;
  /** The event log keeps at most this many entries (oldest dropped first). */
  eventLogMax: number;
  /** How long a stopped container's record is kept (ms); 0 keeps it forever. */
  stoppedRetentionMs: number;
  /** Lowest level that is logged. */
  logLevel: LogLevel;
  /** The config file that was read, or null when none was. */
  source: string | null;
}

/** Values given on the command line (or by a caller); they win over the file. */
export interface ConfigOverrides {
  socket?: string;
  db?: string;
  stateRoot?: string;
  logLevel?: LogLevel;
}

/** What {@linkcode loadConfig} and {@linkcode defaultConfig} look at, injectable for tests. */
export interface ConfigEnvironment {
  /** The user id the daemon runs as (0 = root). */
  uid: number;
  /** Reads an environment variable. */
  getEnv(name: string): string | undefined;
  /** Finds an executable by name in the usual system dirs; null when absent. */
  lookPath(name: string): string | null;
}

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Config file; when absent, `$REAPERD_CONFIG`, then the default file if it exists. */
  file?: string;
  /** Values from flags, which win over the file. */
  overrides?: ConfigOverrides;
  /** Defaults to the real process environment. */
  env?: ConfigEnvironment;
}

/** A config problem: the message is one line naming the file and key (or flag). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Where `runc` and friends are looked for, in this order. */
const RUNTIME_SEARCH_DIRS: readonly string[] = [
  "/usr/sbin",
  "/usr/bin",
  "/usr/local/sbin",
  "/usr/local/bin",
  "/sbin",
  "/bin",
];

/** Runtimes configured by default (name → binary and kind), kept only when the binary is found. */
const DEFAULT_RUNTIMES: Readonly<Record<string, { binary: string; kind: string }>> = {
  runc: { binary: "runc", kind: "oci" },
  crun: { binary: "crun", kind: "oci" },
  kata: { binary: "kata-runtime", kind: "kata" },
};

/** The GC defaults (docs/architecture.md §6). */
export const DEFAULT_GC: Readonly<GcConfig> = {
  concurrency: 8,
  backoffBaseMs: 500,
  backoffMaxMs: 60_000,
  stepTimeoutMs: DEFAULT_STEP_TIMEOUT_MS,
};

/** The socket API's defaults. */
export const DEFAULT_HTTP: Readonly<HttpConfig> = {
  maxConnections: 1000,
  idleTimeoutMs: 60_000,
  responseTimeoutMs: 10_000,
};

/** Longest path a unix socket can bind: sun_path is 108 bytes with the final NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** Longest delay a JS timer can hold (2^31 - 1 ms): every timeout and interval fits it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Longest retention: a hundred years, past which a number is a mistake, not a wish. */
const MAX_RETENTION_MS = 100 * 365 * 86_400_000;
/** Largest event log, which must fit the store. */
const MAX_EVENT_LOG = 100_000_000;
/** Most cleanups at once. */
const MAX_GC_CONCURRENCY = 10_000;
/** Most client connections at once (each is a descriptor). */
const MAX_HTTP_CONNECTIONS = 1_000_000;

/** True when `path` names an executable regular file. */
function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && st.mode !== null && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Finds `name` in {@linkcode RUNTIME_SEARCH_DIRS}; null when it is in none of them. */
export function lookPath(
  name: string,
  dirs: readonly string[] = RUNTIME_SEARCH_DIRS,
): string | null {
  for (const dir of dirs) {
    const candidate = `${dir}/${name}`;
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function currentUid(): number {
  try {
    return Deno.uid() ?? 0;
  } catch {
    // Without --allow-sys the uid is unknown: assume the system service, the common case.
    return 0;
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The real process environment. */
export function processEnvironment(): ConfigEnvironment {
  return { uid: currentUid(), getEnv: readEnv, lookPath: (name) => lookPath(name) };
}

function runtimeDir(env: ConfigEnvironment): string {
  const xdg = env.getEnv("XDG_RUNTIME_DIR");
  return xdg !== undefined && xdg.startsWith("/") ? xdg : `/run/user/${env.uid}`;
}

function stateHome(env: ConfigEnvironment): string {
  const xdg = env.getEnv("XDG_STATE_HOME");
  if (xdg !== undefined && xdg.startsWith("/")) return xdg;
  const home = env.getEnv("HOME");
  if (home === undefined || !home.startsWith("/")) {
    throw new ConfigError("HOME is not set to an absolute path: pass --db");
  }
  return `${home}/.local/state`;
}

/**
 * The socket a client talks to when given no `--socket`: `$REAPERD_SOCKET`, else the daemon's
 * default for this user (`/run/reaperd/reaperd.sock` as root).
 */
export function defaultSocketPath(env: ConfigEnvironment = processEnvironment()): string {
  const fromEnv = env.getEnv("REAPERD_SOCKET");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return env.uid === 0 ? "/run/reaperd/reaperd.sock" : `${runtimeDir(env)}/reaperd/reaperd.sock`;
}

/** The config file read when none is named: it is fine for it not to exist. */
function defaultConfigFile(env: ConfigEnvironment = processEnvironment()): string {
  if (env.uid === 0) return "/etc/reaperd/reaperd.json";
  const xdg = env.getEnv("XDG_CONFIG_HOME");
  if (xdg !== undefined && xdg.startsWith("/")) return `${xdg}/reaperd/reaperd.json`;
  return `${env.getEnv("HOME") ?? ""}/.config/reaperd/reaperd.json`;
}

/**
 * The configuration used when no file says otherwise (docs/architecture.md §8). Runtimes are the ones
 * among runc, crun and kata-runtime whose binary is found now.
 */
export function defaultConfig(env: ConfigEnvironment = processEnvironment()): Config {
  const root = env.uid === 0;
  const runtimes: Record<string, RuntimeConfig> = {};
  for (const [name, { binary, kind }] of Object.entries(DEFAULT_RUNTIMES)) {
    const path = env.lookPath(binary);
    if (path !== null) runtimes[name] = { path, args: [], kind };
  }
  return {
    socket: root ? "/run/reaperd/reaperd.sock" : `${runtimeDir(env)}/reaperd/reaperd.sock`,
    db: root ? "/var/lib/reaperd/reaperd.db" : `${stateHome(env)}/reaperd/reaperd.db`,
    stateRoot: root ? "/var/run/isulad" : `${runtimeDir(env)}/isulad`,
    stateDirPattern: DEFAULT_STATE_DIR_PATTERN,
    runtimes,
    gc: { ...DEFAULT_GC },
    http: { ...DEFAULT_HTTP },
    heldFifoTimeoutMs: 60_000,
    eventLogMax: 100_000,
    stoppedRetentionMs: 86_400_000,
    logLevel: "info",
    source: null,
  };
}

const path = rule<string>((value) => absolutePathProblem(value));
const ms = (min: number) => v.exactOptional(rule<number>(intProblem(min, MAX_TIMER_MS, " ms")));
const file = { noun: "key" };

function argsProblem(value: unknown): string | null {
  if (!Array.isArray(value) || !value.every((a) => typeof a === "string")) {
    return `must be an array of strings, got ${showValue(value)}`;
  }
  return value.some((a) => a.includes("\0")) ? "must not contain NUL characters" : null;
}

function logLevelProblem(value: unknown): string | null {
  return (LOG_LEVELS as readonly unknown[]).includes(value)
    ? null
    : `must be one of ${LOG_LEVELS.join(", ")}, got ${showValue(value)}`;
}

function kindProblem(value: unknown): string | null {
  return typeof value === "string" && kindNames().includes(value)
    ? null
    : `must be one of ${kindNames().join(", ")}, got ${showValue(value)}`;
}

const runtimeEntry = strict({
  path,
  args: v.exactOptional(rule<string[]>(argsProblem)),
  kind: v.exactOptional(rule<string>(kindProblem)),
  root: v.exactOptional(
    rule<boolean>((x) =>
      typeof x === "boolean" ? null : `must be true or false, got ${showValue(x)}`
    ),
  ),
}, {
  ...file,
  notObject: (x) => `must be an object like {"path": "/usr/sbin/runc"}, got ${showValue(x)}`,
});

const runtimes = v.pipe(
  rule<Record<string, unknown>>((x) =>
    typeof x === "object" && x !== null && !Array.isArray(x)
      ? null
      : `must be an object mapping names to {"path": …}, got ${showValue(x)}`
  ),
  v.record(rule<string>(runtimeNameProblem), v.nullable(runtimeEntry)),
);

/** The config file's shape: every key optional, each with its bounds. */
const configFile = strict({
  socket: v.exactOptional(rule<string>((x) => absolutePathProblem(x, MAX_SOCKET_PATH_BYTES))),
  db: v.exactOptional(path),
  stateRoot: v.exactOptional(path),
  stateDirPattern: v.exactOptional(rule<string>(statePatternProblem)),
  runtimes: v.exactOptional(runtimes),
  gc: v.exactOptional(strict({
    concurrency: v.exactOptional(rule<number>(intProblem(1, MAX_GC_CONCURRENCY))),
    backoffBaseMs: ms(1),
    backoffMaxMs: ms(1),
    stepTimeoutMs: ms(1),
  }, file)),
  http: v.exactOptional(strict({
    maxConnections: v.exactOptional(rule<number>(intProblem(1, MAX_HTTP_CONNECTIONS))),
    idleTimeoutMs: ms(1),
    responseTimeoutMs: ms(1),
  }, file)),
  heldFifoTimeoutMs: ms(1),
  eventLogMax: v.exactOptional(rule<number>(intProblem(1, MAX_EVENT_LOG))),
  stoppedRetentionMs: v.exactOptional(
    rule<number>(intProblem(0, MAX_RETENTION_MS, " ms")),
  ),
  logLevel: v.exactOptional(rule<LogLevel>(logLevelProblem)),
}, { ...file, notObject: (x) => `must be a JSON object, got ${showValue(x)}` });

/**
 * Applies the JSON text of a config file on top of `base` and returns the result. `source`
 * names the file in errors. In `runtimes`, each entry replaces the default of the same name,
 * and `null` removes it.
 *
 * @example
 * ```ts
 * import { defaultConfig, parseConfig } from "./config.ts";
 * const env = { uid: 0, getEnv: () => undefined, lookPath: () => null };
 * const c = parseConfig('{"gc": {"concurrency": 4}}', "/etc/reaperd.json", defaultConfig(env));
 * console.assert(c.gc.concurrency === 4);
 * ```
 */
export function parseConfig(text: string, source: string, base: Config): Config {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config ${source}: not valid JSON: ${oneLine(errorMessage(e))}`);
  }
  const parsed = parseShape(configFile, data, "");
  if (!parsed.ok) throw new ConfigError(`config ${source}: ${oneLine(parsed.problem)}`);
  const { runtimes: entries, gc, http, ...plain } = parsed.value;
  const out: Config = {
    ...base,
    ...plain,
    runtimes: { ...base.runtimes },
    gc: { ...base.gc, ...gc },
    http: { ...base.http, ...http },
    source,
  };
  for (const [name, entry] of Object.entries(entries ?? {})) {
    if (entry === null) {
      delete out.runtimes[name];
      continue;
    }
    const { path, args = [], kind = DEFAULT_KIND, root } = entry;
    out.runtimes[name] = { path, args: [...args], kind, ...(root === undefined ? {} : { root }) };
  }
  if (out.gc.backoffMaxMs < out.gc.backoffBaseMs) {
    throw new ConfigError(
      `config ${source}: gc.backoffMaxMs must be at least gc.backoffBaseMs ` +
        `(${out.gc.backoffBaseMs}), got ${out.gc.backoffMaxMs}`,
    );
  }
  return out;
}

/** `value` when `problem` finds nothing wrong with it; else a ConfigError naming `name`. */
function checked<T>(value: T, name: string, problem: string | null): T {
  if (problem !== null) throw new ConfigError(`${name} ${problem}`);
  return value;
}

/** Applies flag values on top of `config`; errors name the flag. */
export function applyOverrides(config: Config, overrides: ConfigOverrides): Config {
  const out: Config = { ...config };
  const { socket, db, stateRoot, logLevel } = overrides;
  if (socket !== undefined) {
    out.socket = checked(socket, "--socket", absolutePathProblem(socket, MAX_SOCKET_PATH_BYTES));
  }
  if (db !== undefined) out.db = checked(db, "--db", absolutePathProblem(db));
  if (stateRoot !== undefined) {
    out.stateRoot = checked(stateRoot, "--state-root", absolutePathProblem(stateRoot));
  }
  if (logLevel !== undefined) {
    out.logLevel = checked(logLevel, "--log-level", logLevelProblem(logLevel));
  }
  return out;
}

/**
 * Builds the daemon's configuration: defaults, then the config file, then `$REAPERD_SOCKET`,
 * then the overrides. The file is `options.file`, else `$REAPERD_CONFIG`, else the default
 * file ({@linkcode defaultConfigFile}) when it exists. Throws {@linkcode ConfigError}.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const env = options.env ?? processEnvironment();
  let config = defaultConfig(env);
  const named = options.file ?? env.getEnv("REAPERD_CONFIG");
  const explicit = named !== undefined && named !== "";
  const file = explicit ? named : defaultConfigFile(env);
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    // Only the default file may be absent: a file someone named must exist.
    if (explicit || !(e instanceof Deno.errors.NotFound)) {
      throw new ConfigError(`config ${file}: cannot read: ${oneLine(errorMessage(e))}`);
    }
  }
  if (text !== null) config = parseConfig(text, file, config);
  const envSocket = env.getEnv("REAPERD_SOCKET");
  if (envSocket !== undefined && envSocket !== "") {
    const problem = absolutePathProblem(envSocket, MAX_SOCKET_PATH_BYTES);
    config.socket = checked(envSocket, "REAPERD_SOCKET", problem);
  }
  return applyOverrides(config, options.overrides ?? {});
}

/** Folds a message onto one line: a journal line must not be split. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim();
}
