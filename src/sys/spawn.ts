/**
 * Starting a child process with glibc's `posix_spawnp` through `Deno.dlopen`. glibc starts
 * the child with `clone(CLONE_VM|CLONE_VFORK)`, so a start costs the daemon a fraction of a
 * millisecond of CPU whatever its size (`Deno.Command` costs about 1.6 ms of the main thread's
 * CPU per child here), and the call waits for the exec on Deno's blocking pool rather than on
 * the main thread, so exits keep being recorded while GC starts helpers.
 *
 * Only the start is here: {@linkcode spawnChild} hands back the pid and the parent ends of the
 * pipes, and the caller waits for the exit (through a pidfd) and reads the pipes (through its
 * epoll loop). {@linkcode reapChild} collects the exit status.
 *
 * @module
 */

import { Errno, SysError } from "./errno.ts";
import { close, cString, errno, O } from "./libc.ts";

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const F_GETFL = 3;
const F_SETFL = 4;
const WNOHANG = 1;
// glibc's opaque types are 80 (file actions), 336 (attributes) and 128 (sigset_t) bytes on
// x86-64 and arm64; room to spare costs nothing.
const OPAQUE_BYTES = 1024;
const POINTER_BYTES = 8;
// posix_spawnp runs on Deno's blocking pool (32 threads, shared with file I/O and the epoll
// waits) and holds its thread until the child has exec'd; a few at once is all that helps.
const MAX_PENDING_SPAWNS = 4;

const symbols = {
  posix_spawnp: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  // glibc 2.34 and later.
  posix_spawn_file_actions_addclosefrom_np: {
    parameters: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof symbols> | undefined;

function libc(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  lib ??= Deno.dlopen("libc.so.6", symbols);
  return lib.symbols;
}

/** What to start. */
export interface SpawnRequest {
  /** The program (searched in PATH when it has no slash) and its arguments. */
  argv: readonly string[];
  /** The whole environment of the child, as `NAME=value` entries. */
  env: readonly string[];
  /** The child's working directory; the caller's when absent. */
  cwd?: string;
  /** "pipe": the child's stdin is a new pipe whose write end comes back; /dev/null otherwise. */
  stdin?: "null" | "pipe";
}

/** A started child: its pid and the parent's (non-blocking) ends of its pipes. */
export interface SpawnedChild {
  pid: number;
  stdout: number;
  stderr: number;
  /** The write end of its stdin, or -1 when its stdin is /dev/null. */
  stdin: number;
}

/**
 * Starts `argv` with stdin from /dev/null, stdout and stderr on two new pipes and no other
 * descriptor (glibc 2.34 and later), every signal at its default disposition and none blocked
 * (the Deno runtime ignores SIGPIPE, and a child must not inherit that). Throws
 * {@linkcode SysError} with the errno of what failed: ENOENT for a missing program or working
 * directory, EACCES for a file that cannot be executed.
 */
export async function spawnChild(request: SpawnRequest): Promise<SpawnedChild> {
  const program = request.argv[0];
  if (program === undefined || program === "") {
    throw new SysError("posix_spawnp", Errno.EINVAL, "empty command line");
  }
  const out = pipe();
  let err: [number, number];
  let input: [number, number] | null = null;
  try {
    err = pipe();
  } catch (e) {
    closeAll(out);
    throw e;
  }
  if (request.stdin === "pipe") {
    try {
      input = pipe("write");
    } catch (e) {
      closeAll([...out, ...err]);
      throw e;
    }
  }
  const actions = new Uint8Array(OPAQUE_BYTES);
  const attr = new Uint8Array(OPAQUE_BYTES);
  const c = libc();
  c.posix_spawn_file_actions_init(actions);
  c.posix_spawnattr_init(attr);
  try {
    const devNull = cString("/dev/null");
    const cwd = request.cwd === undefined ? null : cString(request.cwd);
    if (input === null) ok(c.posix_spawn_file_actions_addopen(actions, 0, devNull, O.RDONLY, 0));
    else ok(c.posix_spawn_file_actions_adddup2(actions, input[0], 0));
    ok(c.posix_spawn_file_actions_adddup2(actions, out[1], 1));
    ok(c.posix_spawn_file_actions_adddup2(actions, err[1], 2));
    if (cwd !== null) ok(c.posix_spawn_file_actions_addchdir_np(actions, cwd));
    // Whatever the daemon inherited without close-on-exec stays with the daemon.
    if (c.posix_spawn_file_actions_addclosefrom_np !== null) {
      ok(c.posix_spawn_file_actions_addclosefrom_np(actions, 3));
    }
    const none = new Uint8Array(OPAQUE_BYTES);
    const all = new Uint8Array(OPAQUE_BYTES);
    c.sigemptyset(none);
    c.sigfillset(all);
    ok(c.posix_spawnattr_setsigmask(attr, none));
    ok(c.posix_spawnattr_setsigdefault(attr, all));
    ok(c.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));

    const argv = new StringTable(request.argv);
    const env = new StringTable(request.env);
    const file = cString(program);
    // An ArrayBuffer of its own: a small typed array may live on V8's heap, which moves.
    const pid = new Int32Array(new ArrayBuffer(4));
    const buffers = [argv, env, file, pid, actions, attr];
    await spawnSlots.take();
    pinned.add(buffers);
    let rc: number;
    try {
      rc = await c.posix_spawnp(pid, file, actions, attr, argv.pointer, env.pointer);
    } finally {
      pinned.delete(buffers);
      spawnSlots.give();
    }
    if (rc !== 0) throw new SysError("posix_spawnp", rc, program);
    closeAll([out[1], err[1], ...(input === null ? [] : [input[0]])]);
    return { pid: pid[0] ?? 0, stdout: out[0], stderr: err[0], stdin: input?.[1] ?? -1 };
  } catch (e) {
    closeAll([...out, ...err, ...(input ?? [])]);
    throw e;
  } finally {
    c.posix_spawn_file_actions_destroy(actions);
    c.posix_spawnattr_destroy(attr);
  }
}

// What a pool thread reads or writes through raw pointers during a call (the argv and envp
// tables are reachable by nothing else): held here until the call returns, so that the garbage
// collector cannot free it meanwhile.
const pinned = new Set<unknown>();

/** A counting semaphore for the spawns pending on the blocking pool. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number) {
    this.#free = count;
  }

  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  give(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#free++;
    else next();
  }
}

const spawnSlots = new Slots(MAX_PENDING_SPAWNS);

/** How a reaped child ended: exactly one of `code` and `signal` is a number. */
export interface ChildExit {
  code: number | null;
  signal: number | null;
}

/**
 * waitpid(pid, WNOHANG) on a child of this process: its exit, or null while it still runs.
 * Call it once the child's pidfd is readable; the zombie is gone afterwards.
 */
export function reapChild(pid: number): ChildExit | null {
  const status = new Int32Array(1);
  for (;;) {
    const r = libc().waitpid(pid, status, WNOHANG);
    if (r === 0) return null;
    if (r === pid) break;
    const e = errno();
    if (e !== Errno.EINTR) throw new SysError("waitpid", e, `pid ${pid}`);
  }
  const s = status[0] ?? 0;
  const termSignal = s & 0x7f;
  return termSignal === 0
    ? { code: (s >> 8) & 0xff, signal: null }
    : { code: null, signal: termSignal };
}

/** A pipe whose parent end (the read end, or the write end for "write") is non-blocking. */
function pipe(parentEnd: "read" | "write" = "read"): [number, number] {
  const fds = new Int32Array(2);
  if (libc().pipe2(fds, O.CLOEXEC) !== 0) throw new SysError("pipe2", errno());
  const [read, write] = [fds[0] ?? -1, fds[1] ?? -1];
  // Only the parent's end is non-blocking: a child writing a lot must block, not fail.
  const mine = parentEnd === "read" ? read : write;
  const flags = libc().fcntl(mine, F_GETFL, 0);
  if (flags < 0 || libc().fcntl(mine, F_SETFL, flags | O.NONBLOCK) < 0) {
    const e = errno();
    closeAll([read, write]);
    throw new SysError("fcntl", e, `fd ${mine}`);
  }
  return [read, write];
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) close(fd);
}

function ok(rc: number): void {
  if (rc !== 0) throw new SysError("posix_spawn setup", rc);
}

/**
 * A NULL-terminated `char *[]` and its strings in one off-heap buffer, as execve wants argv
 * and envp.
 */
class StringTable {
  // Only the pointers below lead into it; holding it here keeps it alive with the table.
  readonly #block: ArrayBuffer;
  readonly pointer: Deno.PointerValue;

  constructor(strings: readonly string[]) {
    const encoded = strings.map((s) => cString(s));
    const tableBytes = (encoded.length + 1) * POINTER_BYTES;
    const total = encoded.reduce((n, s) => n + s.byteLength, tableBytes);
    this.#block = new ArrayBuffer(total);
    const bytes = new Uint8Array(this.#block);
    const table = new BigUint64Array(this.#block, 0, encoded.length + 1);
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    let at = tableBytes;
    encoded.forEach((s, i) => {
      bytes.set(s, at);
      table[i] = base + BigInt(at);
      at += s.byteLength;
    });
    table[encoded.length] = 0n;
    this.pointer = Deno.UnsafePointer.create(base);
  }
}
