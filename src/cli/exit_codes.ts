/**
 * The CLI's exit statuses, in one place so `--help` and the code agree.
 *
 * @module
 */

/** Exit statuses of every command except `wait`, which exits with the container's code. */
export const Exit = {
  /** Done; `gc status`: in GC; `health`: ok. */
  OK: 0,
  /** The daemon refused or failed the request (unknown id, bad value…); `gc status`: not in
   * GC; `health`: degraded. */
  FAILED: 1,
  /** Bad flags or arguments. */
  USAGE: 2,
  /** The daemon could not be reached (not running, wrong socket, no permission). */
  UNREACHABLE: 3,
  /** `serve`: the configuration is invalid (sysexits EX_CONFIG; systemd does not restart). */
  CONFIG: 78,
  /** stdout was closed by its reader (like a process killed by SIGPIPE). */
  BROKEN_PIPE: 141,
} as const;

/** `wait` exits with the container's code (0–255, 128+N for signal N) or one of these. */
export const WaitExit = {
  /** `--timeout` passed before the exit was recorded. */
  TIMEOUT: 124,
  /** The wait itself failed: daemon unreachable, unknown container, refused request. */
  ERROR: 125,
  /** The exit was recorded but its status is unknown (the shim died without writing it, the
   * bytes were garbled, or the container died while reaperd was down). */
  UNKNOWN: 126,
} as const;

/** The exit-status section of `--help`. */
export const EXIT_STATUS_HELP = `Exit status:
  0    success (gc status: the container is in GC; health: ok)
  1    the daemon refused or failed the request (gc status: not in GC; health: degraded)
  2    bad flags or arguments
  3    the daemon could not be reached
  78   serve: the configuration is invalid
  wait exits with the container's exit code (0-255; 128+N when killed by signal N), or:
  124  wait --timeout passed before the exit was recorded
  125  wait failed (daemon unreachable, no such container)
  126  the exit was recorded but its status is unknown (see: reaperd inspect <id>)`;
