/**
 * The domain model every part of reaperd shares: who a container's processes are, how it
 * exited, the durable record kept for it and the GC entry that follows it until its leftovers
 * are gone. Plain data only, so it can cross the KV store, the socket API and the CLI as is.
 *
 * @module
 */

/**
 * A process named so that a reused pid cannot be mistaken for it: the pid together with its
 * start time, field 22 of `/proc/<pid>/stat` (clock ticks since boot).
 */
export interface ProcessIdentity {
  /** Process id; always > 0 for a real process. */
  pid: number;
  /** Start time in clock ticks since boot, as /proc reports it. */
  startTime: number;
}

/** The two processes a container is known by: its init process and the shim that runs it. */
export interface PidInfo {
  /** The container's init process. */
  pid: number;
  /** Its start time (clock ticks since boot). */
  startTime: number;
  /** The shim (isulad-shim style monitor) that holds the write end of the exit FIFO; 0 if none. */
  ppid: number;
  /** The shim's start time; 0 if there is no shim. */
  pStartTime: number;
}

/** How a container's init process ended, as far as reaperd could tell. */
export interface ExitStatus {
  /** The exit code (0–255; 128 + signal when killed by a signal), or null when unknown. */
  code: number | null;
  /** The signal number when the code says the process was killed by one, else null. */
  signal: number | null;
  /** True when the code came from the shim; false when the status was lost or garbled. */
  known: boolean;
  /** Why the status is what it is, in words an operator can read ("exited with code 3"). */
  reason: string;
  /** When the exit was noticed (ms since the epoch). */
  at: number;
  /**
   * True when the OOM killer of the container's memory cgroup killed a process of it while
   * reaperd watched it (out of memory); false when that cgroup counted no OOM kill; absent
   * when reaperd could not tell (no memory cgroup known, or gone by the exit).
   */
  oomKilled?: boolean;
}

/** A container's memory cgroup and its OOM kill count when reaperd began watching it. */
export interface MemoryCgroupMark {
  /** The cgroup's directory (`/sys/fs/cgroup/memory/…` on v1, `/sys/fs/cgroup/…` on v2). */
  dir: string;
  /** Its `oom_kill` count then (`memory.oom_control` on v1, `memory.events` on v2). */
  oomKills: number;
}

/** The lifecycle of a container as reaperd tracks it (docs/architecture.md §4). */
export type ContainerState = "running" | "stopping" | "gc" | "stopped";

/** The durable record of one container. */
export interface ContainerRecord extends PidInfo {
  /** Container id (identity.ts `idProblem`: 1–255 of `[A-Za-z0-9_.-]`, no `..`). */
  id: string;
  /** Human name; defaults to the id. */
  name: string;
  /** Runtime name, a key of the `runtimes` config (runc, crun, kata…). */
  runtime: string;
  /** The container's state dir, `<stateRoot>/<runtime>/<id>`, holding `exit_fifo`. */
  stateDir: string;
  /** Mount points cleanup must unmount (rootfs and the like), innermost first. */
  mounts: string[];
  /** Other paths cleanup must remove (cgroup dirs and the like). */
  paths: string[];
  /** Its memory cgroup as noted at monitor time, to tell an OOM kill at exit; absent if none. */
  memoryCgroup?: MemoryCgroupMark;
  /** Where the container is in its lifecycle. */
  state: ContainerState;
  /** How it exited; null while it runs. */
  exit: ExitStatus | null;
  /** When it was registered for monitoring (ms since the epoch). */
  createdAt: number;
  /** When the record last changed (ms since the epoch). */
  updatedAt: number;
}

/** One run of one cleanup step, as kept in a GC entry and in the event log. */
export interface StepResult {
  /** The step's name ("kill-shim", "runtime-delete"…). */
  step: string;
  /** Whether the step reached its goal (already-gone counts as success). */
  ok: boolean;
  /** The helper's exit code, or null when no helper ran or it was killed. */
  exitCode: number | null;
  /** The last bytes of the helper's stderr, or the error's message. */
  stderrTail: string;
  /** How long the step took (ms). */
  durationMs: number;
  /** True when the step did not run because it had no reason to; `stderrTail` says why. */
  skipped?: boolean;
}

/** A container that still has leftovers to clean, kept until cleanup succeeds. */
export interface GcEntry {
  /** Container id. */
  id: string;
  /** When it entered GC (ms since the epoch). */
  addedAt: number;
  /** Attempts made so far. */
  attempts: number;
  /** When the next attempt is due (ms since the epoch). */
  nextAttemptAt: number;
  /** The step that failed last, or null before the first attempt. */
  lastStep: string | null;
  /** Why the last attempt failed. */
  lastError: string | null;
  /** The failing step's stderr tail. */
  stderrTail: string;
  /** The container process's /proc state char when it would not die ("D", "Z"…), else null. */
  procState: string | null;
}
