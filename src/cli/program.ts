/**
 * The `reaperd` command line: `serve` runs the daemon; every other command is a client of its
 * socket API. Built with commander (+ @commander-js/extra-typings for typed options).
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError } from "@commander-js/extra-typings";
import {
  type Config,
  type ConfigEnvironment,
  ConfigError,
  type ConfigOverrides,
  defaultSocketPath,
  loadConfig,
  LOG_LEVELS,
  type LogLevel,
  processEnvironment,
} from "../config.ts";
import type { GcAddRequest, MonitorRequest } from "../daemon/api.ts";
import { configureLogging } from "../log.ts";
import { EVENT_KINDS } from "../store/events.ts";
import type { ContainerState } from "../types.ts";
import { VERSION } from "../version.ts";
import { completionScript, type Shell, SHELLS } from "./completion.ts";
import { missingServeFlags } from "./deno_flags.ts";
import { filterArg, type Filters, passes } from "./filters.ts";
import { DaemonError, DaemonUnreachableError, ReaperClient } from "./client.ts";
import { Exit, EXIT_STATUS_HELP, WaitExit } from "./exit_codes.ts";
import {
  formatEvent,
  formatGcStatus,
  formatGcTable,
  formatHealth,
  formatRecord,
  formatRecordTable,
} from "./format.ts";
import { type Output, stdio } from "./output.ts";
import { errorMessage } from "../error_message.ts";

/**
 * Runs the daemon until it stops; resolves to the process's exit code. `reload` reads the
 * configuration again the way it was read at start (for SIGHUP).
 */
export type ServeFunction = (
  config: Config,
  options?: { reload?: () => Promise<Config> },
) => Promise<number>;

/** What the CLI needs from the outside world; tests replace any of it. */
export interface CliDeps {
  output: Output;
  env: ConfigEnvironment;
  /** Relative paths given on the command line are taken from here. */
  cwd: () => string;
  now: () => number;
  /** Runs the daemon; by default `serve` from src/daemon/serve.ts, loaded only by `serve`. */
  serve?: ServeFunction;
  /** Why `serve` cannot run in this Deno (missing unstable flags), or null. */
  serveBlocked?: () => string | null;
}

/** The flags of `serve` and `config` that override the config file. */
interface ServeFlags {
  socket?: string | undefined;
  db?: string | undefined;
  stateRoot?: string | undefined;
  logLevel?: LogLevel | undefined;
}

const STATES: readonly ContainerState[] = ["running", "stopping", "gc", "stopped"];
const NO_FILTERS: Filters = new Map();

/** The longest `wait --timeout` (the daemon's limit: a JS timer's longest delay). */
const MAX_TIMEOUT_SECONDS = 2_147_483;
const MAX_PID = 0x3fffffff;

const SOCKET_HELP =
  "the daemon's socket (default: $REAPERD_SOCKET, else /run/reaperd/reaperd.sock" +
  " as root)";

function intParser(what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      const range = min === 0 ? "a non-negative integer" : `an integer of at least ${min}`;
      throw new InvalidArgumentError(
        `${what} must be ${range}${max < MAX_PID + 1 ? ` up to ${max}` : ""}.`,
      );
    }
    return Number(value);
  };
}

const pidArg = intParser("a pid", 1, MAX_PID);
const ppidArg = intParser("the shim's pid (0 for none)", 0, MAX_PID);
const ticksArg = intParser("a start time (clock ticks since boot)", 0);

function secondsArg(value: string): number {
  if (!/^\d{1,10}(\.\d{1,6})?$/.test(value) || Number(value) > MAX_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(
      `a timeout must be a number of seconds from 0 to ${MAX_TIMEOUT_SECONDS}.`,
    );
  }
  return Number(value);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function logLevelArg(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`choose one of ${LOG_LEVELS.join(", ")}.`);
  }
  return value as LogLevel;
}

function shellArg(value: string): Shell {
  if (!(SHELLS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`choose one of ${SHELLS.join(", ")}.`);
  }
  return value as Shell;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

const TOP_HELP = `
Examples:
  reaperd serve                                   run the daemon in the foreground
  reaperd create-fifo /var/run/isulad/runc/web-1  before starting the shim
  reaperd monitor web-1 --runtime runc --state-dir /var/run/isulad/runc/web-1 \\
      --pid 4242 --ppid 4241                      once the container runs
  reaperd wait web-1 --timeout 30                 prints the exit code, exits with it
  reaperd ps                                      every container reaperd knows
  reaperd ps --filter state=stopped --quiet       ids only, for scripts
  reaperd rm web-1                                forget a stopped container now
  reaperd gc ls                                   what is still being cleaned up
  reaperd gc retry web-1                          try its cleanup again now
  reaperd events --follow --json                  the event log, as it grows
  source <(reaperd completion bash)               tab completion (bash, zsh)

Environment:
  REAPERD_SOCKET   the daemon's socket, for every command (like --socket)
  REAPERD_CONFIG   serve's config file when --config is not given
  INIT_CWD         relative paths are taken from here when deno task ran reaperd (it sets
                   it to the directory it was called from)

${EXIT_STATUS_HELP}
`;

/**
 * Builds the program. Actions report their exit status through `setCode`; errors they throw
 * are turned into one line and a status by {@linkcode runCli}.
 */
export function buildProgram(deps: CliDeps, setCode: (code: number) => void) {
  const { output } = deps;
  const socketOf = (opts: { socket?: string | undefined }) =>
    opts.socket ?? defaultSocketPath(deps.env);
  const abs = (p: string) => resolve(deps.cwd(), p);
  const withClient = async <T>(
    opts: { socket?: string | undefined },
    fn: (client: ReaperClient) => Promise<T>,
  ): Promise<T> => {
    const client = new ReaperClient(socketOf(opts));
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };

  const program = new Command()
    .name("reaperd")
    .description(
      "Watches container exit FIFOs, records each exit durably, and cleans up what exited " +
        "containers leave behind, retrying until it is gone.",
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.out(s),
      writeErr: (s) => output.err(s),
      // Commander's message may carry a "(Did you mean …?)" line: keep errors to one line.
      outputError: (s, write) =>
        write(`reaperd: ${s.replace(/^error: /, "").replace(/\s*\n\s*/g, " ").trim()}\n`),
    })
    .showSuggestionAfterError(true)
    .version(VERSION, "-V, --version", "print reaperd's version")
    .addHelpText("after", TOP_HELP);

  const serveOverrides = (o: ServeFlags): ConfigOverrides => {
    const overrides: ConfigOverrides = {};
    if (o.socket !== undefined) overrides.socket = abs(o.socket);
    if (o.db !== undefined) overrides.db = abs(o.db);
    if (o.stateRoot !== undefined) overrides.stateRoot = abs(o.stateRoot);
    if (o.logLevel !== undefined) overrides.logLevel = o.logLevel;
    return overrides;
  };

  const configFor = (o: ServeFlags & { config?: string | undefined }): Promise<Config> => {
    const options: Parameters<typeof loadConfig>[0] = {
      env: deps.env,
      overrides: serveOverrides(o),
    };
    if (o.config !== undefined) options.file = abs(o.config);
    return loadConfig(options);
  };

  program.command("serve")
    .description("Run the daemon in the foreground (what the systemd unit starts).")
    .option(
      "-c, --config <file>",
      "JSON config file (default: $REAPERD_CONFIG, else /etc/reaperd/reaperd.json if it exists)",
    )
    .option(
      "-s, --socket <path>",
      "socket to serve the API on (default: /run/reaperd/reaperd.sock as root)",
    )
    .option("--db <path>", "Deno KV database file (default: /var/lib/reaperd/reaperd.db as root)")
    .option("--state-root <dir>", "root of the container state dirs (default: /var/run/isulad)")
    .option("--log-level <level>", `lowest level logged: ${LOG_LEVELS.join(", ")}`, logLevelArg)
    .addHelpText(
      "after",
      `
Flags win over the config file, which wins over the defaults. Logs go to stderr, one line
each, with <N> priority prefixes when stderr is the journal.

Signals: SIGTERM or SIGINT stop the daemon cleanly. SIGHUP reads the config file (and these
flags) again and applies logLevel and the http limits at once; any
other changed key is logged as needing a restart and keeps its running value. SIGUSR1,
SIGUSR2 and SIGALRM are logged and ignored.

Examples:
  reaperd serve
  reaperd serve --config /etc/reaperd/reaperd.json --log-level debug
  reaperd serve --socket /tmp/r.sock --db /tmp/r.db --state-root /tmp/isulad`,
    )
    .action(async (opts) => {
      const config = await configFor(opts);
      const blocked = (deps.serveBlocked ?? missingServeFlags)();
      if (blocked !== null) {
        output.err(`reaperd: ${blocked}\n`);
        return setCode(Exit.CONFIG);
      }
      configureLogging({ level: config.logLevel });
      const serve = deps.serve ?? await loadServe();
      setCode(await serve(config, { reload: () => configFor(opts) }));
    });

  program.command("config")
    .description("Print the configuration serve would use, after defaults, file and flags.")
    .option("-c, --config <file>", "JSON config file")
    .option("-s, --socket <path>", "socket path override")
    .option("--db <path>", "database path override")
    .option("--state-root <dir>", "state root override")
    .action(async (opts) => {
      output.out(json(await configFor(opts)));
    });

  program.command("create-fifo")
    .description(
      "Create <stateDir> (0700) and its exit_fifo (0600); the daemon holds the read end so a " +
        "shim started next can open the write end at once. Prints the FIFO's path.",
    )
    .argument("<stateDir>", "the container's state dir, e.g. /var/run/isulad/runc/<id>")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", 'print {"fifo": path}')
    .addHelpText("after", "\nExample:\n  reaperd create-fifo /var/run/isulad/runc/web-1")
    .action(async (stateDir, opts) => {
      const res = await withClient(opts, (c) => c.createFifo(abs(stateDir)));
      output.out(opts.json ? json(res) : `${res.fifo}\n`);
    });

  program.command("monitor")
    .description(
      "Record a started container as running and watch its exit FIFO (the read end held by " +
        "create-fifo, or opened now). An exit that happened in between is still seen.",
    )
    .argument("<id>", "container id")
    .requiredOption("--runtime <name>", "runtime name from the config (runc, crun, kata…)")
    .requiredOption("--state-dir <dir>", "the container's state dir (holds exit_fifo)")
    .requiredOption("--pid <pid>", "the container's init process", pidArg)
    .requiredOption("--ppid <pid>", "the shim's pid (0 for none)", ppidArg)
    .option("--name <name>", "human name (default: the id)")
    .option(
      "--start-time <ticks>",
      "the init process's start time (default: read from /proc)",
      ticksArg,
    )
    .option("--pstart-time <ticks>", "the shim's start time (default: read from /proc)", ticksArg)
    .option(
      "--mount <path>",
      "a mount point cleanup unmounts (repeatable)",
      collect,
      [] as string[],
    )
    .option("--path <path>", "a path cleanup removes (repeatable)", collect, [] as string[])
    .option(
      "--memory-cgroup <dir>",
      "the container's memory cgroup, to tell an OOM kill (default: found from /proc/<pid>/cgroup)",
    )
    .option(
      "--create-fifo",
      "create the state dir and exit FIFO if create-fifo was not called (for an engine that " +
        "starts the shim after monitor)",
    )
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the record as JSON")
    .addHelpText(
      "after",
      `
Example:
  reaperd monitor web-1 --runtime runc --state-dir /var/run/isulad/runc/web-1 \\
    --pid 4242 --ppid 4241 --mount /var/lib/isulad/mnt/web-1/rootfs`,
    )
    .action(async (id, opts) => {
      const req: MonitorRequest = {
        id,
        runtime: opts.runtime,
        stateDir: abs(opts.stateDir),
        pid: opts.pid,
        ppid: opts.ppid,
      };
      if (opts.name !== undefined) req.name = opts.name;
      if (opts.startTime !== undefined) req.startTime = opts.startTime;
      if (opts.pstartTime !== undefined) req.pStartTime = opts.pstartTime;
      if (opts.mount.length > 0) req.mounts = opts.mount.map(abs);
      if (opts.path.length > 0) req.paths = opts.path.map(abs);
      if (opts.memoryCgroup !== undefined) req.memoryCgroup = abs(opts.memoryCgroup);
      if (opts.createFifo === true) req.createFifo = true;
      const record = await withClient(opts, (c) => c.monitor(req));
      output.out(
        opts.json
          ? json(record)
          : `monitoring ${record.id} (pid ${record.pid}, shim ${record.ppid}, runtime ${record.runtime})\n`,
      );
    });

  program.command("inspect")
    .description("Show one container's record.")
    .argument("<id>", "container id")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the record as JSON")
    .addHelpText(
      "after",
      `
The JSON record has at least: id, name, runtime, state (running|stopping|gc|stopped), pid,
ppid, startTime, pStartTime, and exit ({code, signal, known, reason, at, oomKilled?} or
null); oomKilled is true when the OOM killer of its memory cgroup killed a process of it.

Example:
  reaperd inspect web-1 --json`,
    )
    .action(async (id, opts) => {
      const record = await withClient(opts, (c) => c.inspect(id));
      output.out(opts.json ? json(record) : formatRecord(record, deps.now()));
    });

  program.command("wait")
    .description("Wait until the container's exit is recorded; print its code and exit with it.")
    .argument("<id>", "container id")
    .option("-t, --timeout <seconds>", "give up after this long (fractions allowed)", secondsArg)
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the record as JSON instead of the code (same exit status)")
    .addHelpText(
      "after",
      `
Exit status:
  0-255  the container's exit code (128+N when it was killed by signal N)
  ${WaitExit.TIMEOUT}    --timeout passed before the exit was recorded
  ${WaitExit.ERROR}    the wait failed: daemon unreachable, no such container
  ${WaitExit.UNKNOWN}    the exit was recorded but its status is unknown (see: reaperd inspect <id>)
  A container can exit with 124-126 itself: use 'reaperd inspect <id> --json' when it matters.

Examples:
  reaperd wait web-1
  code=$(reaperd wait web-1 --timeout 30)`,
    )
    .action(async (id, opts) => {
      setCode(await waitCommand(id, opts.timeout, socketOf(opts), output, opts.json === true));
    });

  program.command("ps")
    .description("List every container reaperd knows.")
    .option(
      "--filter <key=value>",
      `only these (repeatable; keys: state=${STATES.join("|")}, runtime=<name>)`,
      filterArg({ state: STATES, runtime: null }),
    )
    .option("-q, --quiet", "print only the ids, one a line")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the records as a JSON array")
    .addHelpText(
      "after",
      `
Filters on the same key are alternatives; different keys must all match.

Examples:
  reaperd ps
  reaperd ps --filter state=running
  reaperd ps --filter state=stopped --quiet | xargs -r -n1 reaperd rm
  reaperd ps --filter state=gc --filter state=stopping --json`,
    )
    .action(async (opts) => {
      const records = (await withClient(opts, (c) => c.list())).filter((r) =>
        passes(opts.filter ?? NO_FILTERS, (key) => key === "state" ? r.state : r.runtime)
      );
      if (opts.quiet) output.out(records.map((r) => `${r.id}\n`).join(""));
      else output.out(opts.json ? json(records) : formatRecordTable(records, deps.now()));
    });

  program.command("rm")
    .description(
      "Forget a stopped container's record now, instead of when retention would. Refused " +
        "while it runs, is being cleaned up (stopping) or is in GC.",
    )
    .argument("<id>", "container id")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the forgotten record as JSON")
    .addHelpText(
      "after",
      `
Examples:
  reaperd rm web-1
  reaperd ps --filter state=stopped --quiet | xargs -r -n1 reaperd rm`,
    )
    .action(async (id, opts) => {
      const record = await withClient(opts, (c) => c.remove(id));
      output.out(opts.json ? json(record) : `${record.id}\n`);
    });

  const gc = program.command("gc")
    .description("The garbage collector: containers whose leftovers are still being cleaned.")
    .addHelpText(
      "after",
      `
Examples:
  reaperd gc add web-1 --runtime runc --pid 4242 --start-time 98072004 \\
    --ppid 4241 --pstart-time 98072001
  reaperd gc ls
  reaperd gc status web-1 && echo "still cleaning"
  reaperd gc retry web-1`,
    );

  gc.command("add")
    .description(
      "Hand a container to the collector directly (idempotent per id). Refused for one " +
        "monitored as running (stop it with its runtime: its exit is recorded, then cleaned).",
    )
    .argument("<id>", "container id")
    .requiredOption("--runtime <name>", "runtime name from the config")
    .requiredOption("--pid <pid>", "the container's init process", pidArg)
    .requiredOption("--ppid <pid>", "the shim's pid (0 for none)", ppidArg)
    .option(
      "--start-time <ticks>",
      "the init process's start time (required while its pid is alive)",
      ticksArg,
    )
    .option("--pstart-time <ticks>", "the shim's start time (required while it is alive)", ticksArg)
    .option("--state-dir <dir>", "state dir (default: <stateRoot>/<runtime>/<id>)")
    .option("--mount <path>", "a mount point to unmount (repeatable)", collect, [] as string[])
    .option("--path <path>", "a path to remove (repeatable)", collect, [] as string[])
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the GC status as JSON")
    .action(async (id, opts) => {
      const req: GcAddRequest = { id, runtime: opts.runtime, pid: opts.pid, ppid: opts.ppid };
      if (opts.startTime !== undefined) req.startTime = opts.startTime;
      if (opts.pstartTime !== undefined) req.pStartTime = opts.pstartTime;
      if (opts.stateDir !== undefined) req.stateDir = abs(opts.stateDir);
      if (opts.mount.length > 0) req.mounts = opts.mount.map(abs);
      if (opts.path.length > 0) req.paths = opts.path.map(abs);
      const status = await withClient(opts, (c) => c.gcAdd(req));
      output.out(opts.json ? json(status) : formatGcStatus(status, deps.now()));
    });

  gc.command("ls")
    .description("List the containers in GC: attempts, next attempt, last failure.")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the GC statuses as a JSON array")
    .action(async (opts) => {
      const list = await withClient(opts, (c) => c.gcList());
      output.out(opts.json ? json(list) : formatGcTable(list, deps.now()));
    });

  gc.command("status")
    .description("Tell whether a container is in GC: exit 0 when it is, 1 when it is not.")
    .argument("<id>", "container id")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the GC status as JSON (null when not in GC)")
    .action(async (id, opts) => {
      try {
        const status = await withClient(opts, (c) => c.gcStatus(id));
        output.out(opts.json ? json(status) : formatGcStatus(status, deps.now()));
      } catch (e) {
        if (!(e instanceof DaemonError && e.status === 404)) throw e;
        output.out(opts.json ? "null\n" : `${id}: not in GC\n`);
        setCode(Exit.FAILED);
      }
    });

  gc.command("retry")
    .description(
      "Make a container's next cleanup attempt due now, instead of when its backoff ends " +
        "(after fixing what made it fail).",
    )
    .argument("<id>", "container id")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the GC status as JSON")
    .addHelpText(
      "after",
      `
The backoff goes on from the attempts already counted when this attempt fails too.

Examples:
  umount /var/lib/isulad/mnt/web-1/rootfs && reaperd gc retry web-1
  reaperd gc ls --json | jq -r '.[].record.id' | xargs -r -n1 reaperd gc retry`,
    )
    .action(async (id, opts) => {
      const status = await withClient(opts, (c) => c.gcRetry(id));
      output.out(opts.json ? json(status) : `${id}: next attempt now\n`);
    });

  program.command("events")
    .description(`Print the event log (${EVENT_KINDS.join(", ")}).`)
    .option("--since <seq>", "only events after this sequence number", intParser("--since", 0))
    .option("--limit <n>", "stop after this many events", intParser("--limit", 1, 1_000_000))
    .option(
      "--filter <key=value[,key=value]>",
      `only these (repeatable; keys: id=<container>, kind=${EVENT_KINDS.join("|")})`,
      filterArg({ id: null, kind: EVENT_KINDS }),
    )
    .option("-f, --follow", "keep printing new events as they come")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "one JSON object a line (NDJSON)")
    .addHelpText(
      "after",
      `
Examples:
  reaperd events --since 1200
  reaperd events --filter id=web-1
  reaperd events --filter kind=gc,kind=gc-attempt --filter id=web-1 --follow
  reaperd events --follow --json | jq -r 'select(.kind == "exit") | .id'

Filters on the same key are alternatives; different keys must all match. --limit counts
the events printed.`,
    )
    .action(async (opts) => {
      await withClient(opts, async (c) => {
        const options: Parameters<typeof c.events>[0] = { follow: opts.follow ?? false };
        if (opts.since !== undefined) options.since = opts.since;
        // Filtered, the limit counts what is printed: the daemon cannot count for us.
        const filters = opts.filter ?? NO_FILTERS;
        if (opts.limit !== undefined && filters.size === 0) options.limit = opts.limit;
        let printed = 0;
        for await (const event of c.events(options)) {
          if (!passes(filters, (key) => key === "id" ? event.id : event.kind)) continue;
          output.out(opts.json ? `${JSON.stringify(event)}\n` : formatEvent(event));
          if (++printed === opts.limit) break;
        }
      });
    });

  program.command("health")
    .description("Show the daemon's health: exit 0 when ok, 1 when degraded.")
    .option("-s, --socket <path>", SOCKET_HELP)
    .option("--json", "print the health object as JSON")
    .action(async (opts) => {
      const health = await withClient(opts, (c) => c.health());
      output.out(opts.json ? json(health) : formatHealth(health));
      if (health.status !== "ok") setCode(Exit.FAILED);
    });

  program.command("metrics")
    .description("Print the daemon's Prometheus metrics.")
    .option("-s, --socket <path>", SOCKET_HELP)
    .action(async (opts) => {
      output.out(await withClient(opts, (c) => c.metrics()));
    });

  program.command("completion")
    .description("Print the shell completion script for bash or zsh.")
    .argument("<shell>", `one of ${SHELLS.join(", ")}`, shellArg)
    .addHelpText(
      "after",
      `
Examples:
  source <(reaperd completion bash)                      this shell only
  reaperd completion bash > /etc/bash_completion.d/reaperd
  reaperd completion zsh > "\${fpath[1]}/_reaperd"          zsh, after compinit`,
    )
    .action((shell) => {
      output.out(completionScript(program, shell, {
        "completion completion": SHELLS,
        "ps --filter": STATES.map((s) => `state=${s}`),
        "events --filter": EVENT_KINDS.map((k) => `kind=${k}`),
        "serve --log-level": LOG_LEVELS,
      }));
    });

  return program;
}

/** Where `deno task` runs reaperd's tasks: the directory of deno.json, beside main.ts. */
const TASK_DIRECTORY = new URL("../../", import.meta.url);

/**
 * The directory relative paths are taken from: INIT_CWD when `deno task` ran reaperd (the
 * process then runs in the task directory), else the cwd. INIT_CWD alone proves nothing: every
 * process under a `deno task` or `npm run` inherits it, after any cd.
 */
function callerDirectory(env: ConfigEnvironment): string {
  const cwd = Deno.cwd();
  const init = env.getEnv("INIT_CWD");
  if (init === undefined || !isAbsolute(init) || TASK_DIRECTORY.protocol !== "file:") return cwd;
  return resolve(fileURLToPath(TASK_DIRECTORY)) === cwd ? init : cwd;
}

/** Loads the daemon only for `serve`: client commands then need no FFI, KV or extra grants. */
async function loadServe(): Promise<ServeFunction> {
  const mod: { serve: ServeFunction } = await import("../daemon/serve.ts");
  return mod.serve;
}

/** `reaperd wait`: see the exit statuses in its help. */
async function waitCommand(
  id: string,
  timeout: number | undefined,
  socket: string,
  output: Output,
  asJson = false,
): Promise<number> {
  const client = new ReaperClient(socket);
  try {
    let record = await client.wait(id, timeout);
    // Without --timeout, wait as long as it takes: the daemon caps one long poll.
    while (timeout === undefined && record.state === "running" && record.exit === null) {
      record = await client.wait(id);
    }
    if (asJson) output.out(json(record));
    if (record.state === "running" && record.exit === null) {
      output.err(`reaperd: timed out after ${timeout}s waiting for ${id} to exit\n`);
      return WaitExit.TIMEOUT;
    }
    const exit = record.exit;
    if (exit === null || !exit.known || exit.code === null) {
      const why = exit?.reason ?? `no exit status was recorded (state ${record.state})`;
      output.err(`reaperd: ${id} exited but its status is unknown: ${why}\n`);
      return WaitExit.UNKNOWN;
    }
    if (!asJson) output.out(`${exit.code}\n`);
    return exit.code & 0xff;
  } catch (e) {
    if (e instanceof DaemonUnreachableError || e instanceof DaemonError) {
      reportError(e, output);
      return WaitExit.ERROR;
    }
    throw e;
  } finally {
    client.close();
  }
}

/** Prints the one line an error deserves; returns the generic exit status for it. */
function reportError(e: unknown, output: Output): number {
  if (e instanceof DaemonUnreachableError) {
    const hint = e.permissionDenied
      ? "permission denied (the socket is mode 0600: run as the daemon's user, root for the system service)"
      : "is it running? (start it with: reaperd serve)";
    output.err(`reaperd: cannot reach the daemon at ${e.socket}: ${hint}\n`);
    return Exit.UNREACHABLE;
  }
  if (e instanceof DaemonError) {
    output.err(`reaperd: ${e.message}\n`);
    return Exit.FAILED;
  }
  if (e instanceof ConfigError) {
    output.err(`reaperd: ${e.message}\n`);
    return Exit.CONFIG;
  }
  const message = errorMessage(e);
  output.err(`reaperd: ${message.replace(/\s*\n\s*/g, " ")}\n`);
  return Exit.FAILED;
}

/**
 * Runs the CLI with `args` (without the program name) and resolves to the exit status.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await runCli(Deno.args));
 * ```
 */
export async function runCli(
  args: readonly string[],
  deps: Partial<CliDeps> = {},
): Promise<number> {
  // deno task runs its command in the repository and keeps the caller's directory in INIT_CWD.
  const full: CliDeps = {
    output: deps.output ?? stdio(),
    env: deps.env ?? processEnvironment(),
    cwd: deps.cwd ?? (() => callerDirectory(full.env)),
    now: deps.now ?? (() => Date.now()),
  };
  if (deps.serve !== undefined) full.serve = deps.serve;
  if (deps.serveBlocked !== undefined) full.serveBlocked = deps.serveBlocked;
  let code: number = Exit.OK;
  const program = buildProgram(full, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...args], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    if (e instanceof Deno.errors.BrokenPipe) return Exit.BROKEN_PIPE;
    return reportError(e, full.output);
  }
}
