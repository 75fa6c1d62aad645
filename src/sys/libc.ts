/**
 * The libc calls reaperd needs that Deno does not offer, through `Deno.dlopen` (needs only
 * `--allow-ffi`). Every wrapper here is synchronous and non-blocking except
 * {@linkcode epollWaitAsync}, which runs on Deno's blocking pool and is only ever pending once,
 * and the calls given a path, which take as long as the filesystem under it does: cleanup makes
 * those on a container's own paths through safe_path.ts in the path helper, never the daemon.
 *
 * Synchronous wrappers read errno right after the call, on the same thread, and throw
 * {@linkcode SysError}.
 *
 * @module
 */

import { Errno, SysError } from "./errno.ts";

const isArm64 = Deno.build.arch === "aarch64";

/** open(2) flags; O_NOFOLLOW and O_DIRECTORY differ between x86-64 and arm64. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
  NOFOLLOW: isArm64 ? 0o100000 : 0o400000,
  DIRECTORY: isArm64 ? 0o40000 : 0o200000,
} as const;

/** epoll(7) event bits and control operations. */
export const EPOLL = {
  IN: 0x001,
  ERR: 0x008,
  HUP: 0x010,
  /** Edge-triggered: reported when something new happens, not while it stays ready. */
  ET: 0x80000000,
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
} as const;

/** `struct epoll_event` is packed (12 bytes) on x86-64 and naturally aligned (16) elsewhere. */
export const EPOLL_EVENT_SIZE = isArm64 ? 16 : 12;
const EPOLL_DATA_OFFSET = isArm64 ? 8 : 4;

const SYS_PIDFD_SEND_SIGNAL = 424n;
const SYS_PIDFD_OPEN = 434n;
const SYS_OPENAT2 = 437n;
const AT_EMPTY_PATH = 0x1000;
const STATX_TYPE = 0x1;
const STATX_SIZE = 256;
const STATX_MODE_OFFSET = 28;
const RLIMIT_NOFILE = 7;

/** File type bits of st_mode. */
export const S_IFMT = 0o170000;
/** A FIFO's file type bits. */
export const S_IFIFO = 0o010000;

const symbols = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64"], result: "i64" },
  syscall_openat2: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "buffer", "i64"],
    result: "i64",
  },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  fchdir: { parameters: ["i32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  tee: { parameters: ["i32", "i32", "usize", "u32"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof symbols> | undefined;

function libc(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  lib ??= Deno.dlopen("libc.so.6", symbols);
  return lib.symbols;
}

/** The calling thread's errno, read right after a failed synchronous call. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of a path, as C expects it. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new SysError("path", Errno.EINVAL, JSON.stringify(s));
  return encoder.encode(s + "\0");
}

function check(result: number, call: string, subject?: string): number {
  if (result < 0) throw new SysError(call, errno(), subject);
  return result;
}

/** open(2); returns the fd. */
export function open(path: string, flags: number, mode = 0): number {
  return check(libc().open(cString(path), flags, mode), "open", path);
}

/**
 * The bytes of a small file read into `buf` (open, read until full or end, close); null when
 * the path is not there (ENOENT, or ESRCH: a /proc entry whose process went meanwhile). No
 * exception for a miss: a process that is gone is the usual answer of a /proc read, and an
 * exception per miss cost more than the read itself.
 */
export function readFileInto(path: string, buf: Uint8Array<ArrayBuffer>): number | null {
  const fd = libc().open(cString(path), O.RDONLY | O.CLOEXEC, 0);
  if (fd < 0) {
    const e = errno();
    if (e === Errno.ENOENT || e === Errno.ESRCH) return null;
    throw new SysError("open", e, path);
  }
  try {
    let total = 0;
    while (total < buf.length) {
      const n = Number(libc().read(fd, buf.subarray(total), BigInt(buf.length - total)));
      if (n === 0) break;
      if (n > 0) {
        total += n;
        continue;
      }
      const e = errno();
      if (e === Errno.EINTR) continue;
      if (e === Errno.ESRCH) return null;
      throw new SysError("read", e, path);
    }
    return total;
  } finally {
    libc().close(fd);
  }
}

/** close(2); EBADF and EINTR are not reported (the fd is gone either way). */
export function close(fd: number): void {
  libc().close(fd);
}

/**
 * read(2) into `buf`. Returns the byte count (0 = end of file), or null when the fd is
 * non-blocking and has nothing to read now (EAGAIN).
 */
export function read(fd: number, buf: Uint8Array<ArrayBuffer>): number | null {
  for (;;) {
    const n = Number(libc().read(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) return null;
    throw new SysError("read", e, `fd ${fd}`);
  }
}

/** write(2); returns the byte count written. */
export function write(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc().write(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e !== Errno.EINTR) throw new SysError("write", e, `fd ${fd}`);
  }
}

/** mkfifo(3). Throws SysError with EEXIST when the path exists. */
export function mkfifo(path: string, mode: number): void {
  check(libc().mkfifo(cString(path), mode), "mkfifo", path);
}

/**
 * openat2(2) of `path` relative to `dirFd` with `struct open_how` {flags, mode 0, resolve}.
 * Returns the fd; errors name `shownAs` (the path by default).
 */
export function openat2(
  dirFd: number,
  path: string,
  flags: number,
  resolve: number,
  shownAs = path,
): number {
  const how = new BigUint64Array([BigInt(flags), 0n, BigInt(resolve)]);
  const fd = Number(
    libc().syscall_openat2(
      SYS_OPENAT2,
      BigInt(dirFd),
      cString(path),
      new Uint8Array(how.buffer),
      24n,
    ),
  );
  return check(fd, "openat2", shownAs);
}

/** statx(2) of `path` in `dirFd` into `buf` (256 bytes); errors name `shownAs`. */
export function statx(
  dirFd: number,
  path: string,
  flags: number,
  mask: number,
  buf: Uint8Array<ArrayBuffer>,
  shownAs = path,
): void {
  check(libc().statx(dirFd, cString(path), flags, mask, buf), "statx", shownAs);
}

/** unlinkat(2) of `name` in `dirFd`. */
export function unlinkat(dirFd: number, name: string, flags: number): void {
  check(libc().unlinkat(dirFd, cString(name), flags), "unlinkat", name);
}

/** fchdir(2): this process's working directory becomes `fd`; errors name `shownAs`. */
export function fchdir(fd: number, shownAs: string): void {
  check(libc().fchdir(fd), "fchdir", shownAs);
}

/** The file type bits (st_mode & S_IFMT) of an open fd, from statx(AT_EMPTY_PATH). */
export function fileTypeOfFd(fd: number): number {
  const buf = new Uint8Array(STATX_SIZE);
  check(libc().statx(fd, cString(""), AT_EMPTY_PATH, STATX_TYPE, buf), "statx", `fd ${fd}`);
  return new DataView(buf.buffer).getUint16(STATX_MODE_OFFSET, true) & S_IFMT;
}

/** epoll_create1(EPOLL_CLOEXEC). */
export function epollCreate(): number {
  return check(libc().epoll_create1(O.CLOEXEC), "epoll_create1");
}

function epollEvent(events: number, data: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(EPOLL_EVENT_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(0, events, true);
  view.setBigUint64(EPOLL_DATA_OFFSET, BigInt(data), true);
  return buf;
}

/** epoll_ctl(2); `data` (a safe integer, the fd by default) comes back with each event. */
export function epollCtl(epfd: number, op: number, fd: number, events: number, data = fd): void {
  check(libc().epoll_ctl(epfd, op, fd, epollEvent(events, data)), "epoll_ctl", `fd ${fd}`);
}

/** One ready entry as epoll_wait reported it. */
export interface EpollReady {
  /** The data given to epollCtl. */
  data: number;
  /** The event bits (EPOLL.IN, EPOLL.HUP…). */
  events: number;
}

/** Decodes the first `count` events of an epoll_wait buffer. */
export function decodeEpollEvents(buf: Uint8Array<ArrayBuffer>, count: number): EpollReady[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const ready: EpollReady[] = [];
  for (let i = 0; i < count; i++) {
    const base = i * EPOLL_EVENT_SIZE;
    ready.push({
      events: view.getUint32(base, true),
      data: Number(view.getBigUint64(base + EPOLL_DATA_OFFSET, true)),
    });
  }
  return ready;
}

/** epoll_wait(2) without blocking the caller (timeout 0). Returns the ready count. */
export function epollWaitNow(epfd: number, buf: Uint8Array<ArrayBuffer>): number {
  const max = Math.floor(buf.byteLength / EPOLL_EVENT_SIZE);
  const n = libc().epoll_wait(epfd, buf, max, 0);
  if (n < 0) {
    const e = errno();
    if (e === Errno.EINTR) return 0;
    throw new SysError("epoll_wait", e);
  }
  return n;
}

/**
 * epoll_wait(2) on Deno's blocking pool. The buffer must not be touched until the promise
 * settles. Returns the ready count, or -1 on error (errno belongs to another thread, so the
 * caller just waits again).
 */
export function epollWaitAsync(
  epfd: number,
  buf: Uint8Array<ArrayBuffer>,
  timeoutMs: number,
): Promise<number> {
  const max = Math.floor(buf.byteLength / EPOLL_EVENT_SIZE);
  return libc().epoll_wait_async(epfd, buf, max, timeoutMs);
}

/** eventfd(2), non-blocking and close-on-exec: the loop's wake-up bell. */
export function eventfd(): number {
  return check(libc().eventfd(0, O.NONBLOCK | O.CLOEXEC), "eventfd");
}

/**
 * pidfd_open(2). Throws SysError: ESRCH when the process is gone, ENOENT when the pid names a
 * thread that is not a process's main thread (kernels with PIDFD_THREAD), ENOSYS on old
 * kernels.
 */
export function pidfdOpen(pid: number): number {
  if (!Number.isInteger(pid) || pid <= 0) throw new SysError("pidfd_open", Errno.EINVAL, `${pid}`);
  return check(
    Number(libc().syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n, 0n, 0n)),
    "pidfd_open",
    `pid ${pid}`,
  );
}

/** pidfd_send_signal(2): signals exactly the process the pidfd was opened on. */
export function pidfdSendSignal(pidfd: number, signal: number): void {
  check(
    Number(libc().syscall(SYS_PIDFD_SEND_SIGNAL, BigInt(pidfd), BigInt(signal), 0n, 0n)),
    "pidfd_send_signal",
    `fd ${pidfd}`,
  );
}

/**
 * kill(2), for kernels without pidfd. Refuses pid ≤ 0 itself, so that no caller can ever
 * signal a process group, every process (-1) or itself by mistake.
 */
export function kill(pid: number, signal: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new SysError("kill", Errno.EINVAL, `pid ${pid}`);
  check(libc().kill(pid, signal), "kill", `pid ${pid}`);
}

/**
 * umount2(2) with the given flags (0 = plain unmount; EBUSY when in use); errors name
 * `shownAs`.
 */
export function umount(target: string, flags = 0, shownAs = target): void {
  check(libc().umount2(cString(target), flags), "umount2", shownAs);
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** flock(LOCK_EX|LOCK_NB): true when taken, false when another open file holds it. */
export function tryLockExclusive(fd: number): boolean {
  if (libc().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const e = errno();
  if (e === Errno.EAGAIN) return false;
  throw new SysError("flock", e, `fd ${fd}`);
}

/** RLIMIT_NOFILE as {soft, hard}. */
export function getFdLimit(): { soft: number; hard: number } {
  const buf = new Uint8Array(16);
  check(libc().getrlimit(RLIMIT_NOFILE, buf), "getrlimit");
  const view = new DataView(buf.buffer);
  return {
    soft: Number(view.getBigUint64(0, true)),
    hard: Number(view.getBigUint64(8, true)),
  };
}

/** Sets RLIMIT_NOFILE. */
export function setFdLimit(soft: number, hard: number): void {
  const buf = new Uint8Array(16);
  const view = new DataView(buf.buffer);
  view.setBigUint64(0, BigInt(soft), true);
  view.setBigUint64(8, BigInt(hard), true);
  check(libc().setrlimit(RLIMIT_NOFILE, buf), "setrlimit");
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const SUN_PATH_MAX = 108;
const MSGHDR_SIZE = 56;
const CMSG_HEADER = 16;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const SPLICE_F_NONBLOCK = 2;

/** An unbound unix datagram socket, non-blocking and close-on-exec. */
export function unixDatagramSocket(): number {
  return check(libc().socket(AF_UNIX, SOCK_DGRAM | O.NONBLOCK | O.CLOEXEC, 0), "socket");
}

function pointerValue(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * `sockaddr_un` for `address`: an absolute path, or an abstract name given with its leading
 * NUL. Returns the struct and the length to pass.
 */
function unixAddress(address: string): { addr: Uint8Array<ArrayBuffer>; len: number } {
  const path = encoder.encode(address);
  const abstract = path[0] === 0;
  if (path.length === 0 || path.length >= SUN_PATH_MAX) {
    throw new SysError("sendmsg", Errno.EINVAL, `address of ${path.length} bytes`);
  }
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(path, 2);
  return { addr, len: 2 + path.length + (abstract ? 0 : 1) };
}

/**
 * sendmsg(2) of one datagram to the unix socket at `address`, with `fds` passed in an
 * SCM_RIGHTS control message when there are any. Never blocks (MSG_DONTWAIT): a full queue
 * throws SysError with EAGAIN, which the caller may retry later.
 */
export function sendDatagram(
  sock: number,
  address: string,
  payload: Uint8Array<ArrayBuffer>,
  fds: readonly number[] = [],
): void {
  const { addr, len } = unixAddress(address);
  const iov = new Uint8Array(16);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(0, pointerValue(payload), true);
  iovView.setBigUint64(8, BigInt(payload.byteLength), true);
  const dataLen = 4 * fds.length;
  const control = new Uint8Array(CMSG_HEADER + Math.ceil(dataLen / 8) * 8);
  if (fds.length > 0) {
    const c = new DataView(control.buffer);
    c.setBigUint64(0, BigInt(CMSG_HEADER + dataLen), true);
    c.setInt32(8, SOL_SOCKET, true);
    c.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => c.setInt32(CMSG_HEADER + 4 * i, fd, true));
  }
  const msg = new Uint8Array(MSGHDR_SIZE);
  const m = new DataView(msg.buffer);
  m.setBigUint64(0, pointerValue(addr), true);
  m.setUint32(8, len, true);
  m.setBigUint64(16, pointerValue(iov), true);
  m.setBigUint64(24, 1n, true);
  if (fds.length > 0) {
    m.setBigUint64(32, pointerValue(control), true);
    m.setBigUint64(40, BigInt(control.byteLength), true);
  }
  for (;;) {
    const n = Number(libc().sendmsg(sock, msg, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n >= 0) return;
    const e = errno();
    if (e !== Errno.EINTR) throw new SysError("sendmsg", e, address.replace("\0", "@"));
  }
}

/** pipe2(O_NONBLOCK|O_CLOEXEC): `[readEnd, writeEnd]`. */
export function pipe(): [number, number] {
  const buf = new Int32Array(2);
  check(libc().pipe2(new Uint8Array(buf.buffer), O.NONBLOCK | O.CLOEXEC), "pipe2");
  return [buf[0]!, buf[1]!];
}

/**
 * tee(2) without blocking: copies up to `len` bytes of what waits in pipe `from` into pipe
 * `to` without consuming them. Returns the byte count, 0 when `from` is empty with no writer,
 * or null when it is empty with a writer (EAGAIN) or `to` is full.
 */
export function tee(from: number, to: number, len: number): number | null {
  for (;;) {
    const n = Number(libc().tee(from, to, BigInt(len), SPLICE_F_NONBLOCK));
    if (n >= 0) return n;
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) return null;
    throw new SysError("tee", e, `fd ${from}`);
  }
}

/** Sets close-on-exec on an fd (one inherited from the parent, say). */
export function setCloseOnExec(fd: number): void {
  check(libc().fcntl(fd, F_SETFD, FD_CLOEXEC), "fcntl", `fd ${fd}`);
}

/** Sets O_NONBLOCK on an fd's open file description. */
export function setNonBlocking(fd: number): void {
  const flags = check(libc().fcntl(fd, F_GETFL, 0), "fcntl", `fd ${fd}`);
  if ((flags & O.NONBLOCK) === 0) {
    check(libc().fcntl(fd, F_SETFL, flags | O.NONBLOCK), "fcntl", `fd ${fd}`);
  }
}
