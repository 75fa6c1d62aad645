/**
 * Linux errno values reaperd handles by name, and the error type every libc wrapper throws.
 *
 * @module
 */

/** errno values (identical on x86-64 and arm64 Linux). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
} as const;

const names = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));

/** The symbolic name of an errno value ("ENOENT"), or "errno N" when it has none here. */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `errno ${errno}`;
}

/** A failed system call: which call, on what, and the errno it left. */
export class SysError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** The errno's symbolic name ("ENOENT"). */
  readonly code: string;
  /** The call that failed ("open", "epoll_ctl"…). */
  readonly call: string;

  constructor(call: string, errno: number, subject?: string) {
    const code = errnoName(errno);
    super(subject === undefined ? `${call}: ${code}` : `${call} ${subject}: ${code}`);
    this.name = "SysError";
    this.errno = errno;
    this.code = code;
    this.call = call;
  }
}
