/**
 * Signals a process only if it is still the one reaperd means: the pidfd is opened first and
 * the start time checked after, so the signal cannot reach a process that reused the pid.
 *
 * @module
 */

import type { ProcessIdentity } from "../types.ts";
import { Errno, SysError } from "./errno.ts";
import { close, kill, pidfdOpen, pidfdSendSignal } from "./libc.ts";
import { isValidPid, readProcStat } from "./proc.ts";

/** Signal numbers reaperd sends (Linux, all architectures it runs on). */
export const Signal = { SIGKILL: 9, SIGTERM: 15, SIGCONT: 18 } as const;

/** What {@linkcode signalProcess} did. */
export type SignalOutcome = "signalled" | "gone" | "invalid";

let pidfdUnsupported = false;

/**
 * Sends `signal` to the process named by (pid, start time). Returns "gone" when that process
 * no longer exists (a reused pid counts as gone and is not touched), "invalid" for pid ≤ 0,
 * "signalled" otherwise. Other failures (EPERM…) throw SysError.
 */
export function signalProcess(id: ProcessIdentity, signal: number): SignalOutcome {
  if (!isValidPid(id.pid)) return "invalid";
  if (!pidfdUnsupported) {
    let fd: number;
    try {
      fd = pidfdOpen(id.pid);
    } catch (e) {
      // ENOENT: the pid now names a thread of another process (pid reused): ours is gone.
      if (e instanceof SysError && (e.errno === Errno.ESRCH || e.errno === Errno.ENOENT)) {
        return "gone";
      }
      if (!(e instanceof SysError && e.errno === Errno.ENOSYS)) throw e;
      pidfdUnsupported = true;
      return signalByPid(id, signal);
    }
    try {
      if (readProcStat(id.pid)?.startTime !== id.startTime) return "gone";
      pidfdSendSignal(fd, signal);
      return "signalled";
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.ESRCH) return "gone";
      throw e;
    } finally {
      close(fd);
    }
  }
  return signalByPid(id, signal);
}

function signalByPid(id: ProcessIdentity, signal: number): SignalOutcome {
  if (readProcStat(id.pid)?.startTime !== id.startTime) return "gone";
  try {
    kill(id.pid, signal);
    return "signalled";
  } catch (e) {
    if (e instanceof SysError && e.errno === Errno.ESRCH) return "gone";
    throw e;
  }
}
