/**
 * The peer baseline: conmon (Debian's package) supervising real runc containers, one conmon
 * each, the way podman and CRI-O run them. Each container is busybox `sleep` in a read-only
 * bundle; conmon runs `runc create`, the benchmark runs `runc start`, then reads every
 * conmon's memory from /proc. Everything is killed, deleted and removed afterwards.
 *
 * @module
 */

import { countFds, type Memory, readMemory } from "./_daemon.ts";
import { sleep } from "./_stats.ts";

/** What {@linkcode measureConmon} found, or why it could not. */
export type ConmonResult =
  | {
    ok: true;
    /** conmon --version, first line. */
    version: string;
    /** Containers (= conmon processes). */
    count: number;
    /** Mean per conmon (KiB). */
    mean: Memory;
    /** Mean descriptors per conmon. */
    fds: number;
  }
  | { ok: false; reason: string };

const decoder = new TextDecoder();

function which(name: string): string | null {
  for (
    const dir of ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"]
  ) {
    try {
      Deno.statSync(`${dir}/${name}`);
      return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return null;
}

async function run(argv: string[], timeoutMs = 30_000): Promise<{ ok: boolean; out: string }> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  return { ok: out.success, out: (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim() };
}

const PR_SET_CHILD_SUBREAPER = 36;
let libc:
  | Deno.DynamicLibrary<{
    prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"]; result: "i32" };
    waitpid: { parameters: ["i32", "buffer", "i32"]; result: "i32" };
  }>
  | null = null;

function lib() {
  libc ??= Deno.dlopen("libc.so.6", {
    prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
    waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  });
  return libc.symbols;
}

/** Makes this process adopt its orphaned descendants (the daemonized conmons), or stops it. */
function setSubreaper(on: boolean): void {
  lib().prctl(PR_SET_CHILD_SUBREAPER, on ? 1n : 0n, 0n, 0n, 0n);
}

/** Reaps `pid`, a conmon this process adopted, which is dead or SIGKILLed already. */
function reap(pid: number): void {
  // Blocks only for a process that is ending; ECHILD (not ours) returns at once.
  lib().waitpid(pid, new Int32Array(1), 0);
}

/** Alive and not a zombie (conmon double-forks to pid 1, which may never reap it here). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Polls `runc state` until the container is in `status` (10 s at most). */
async function waitForState(
  runc: string,
  root: string,
  id: string,
  status: string,
): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const state = await run([runc, "--root", root, "state", id]);
    if (state.ok && JSON.parse(state.out).status === status) return true;
    await sleep(20);
  }
  return false;
}

/** Starts `count` containers under conmon, measures each conmon, tears everything down. */
export async function measureConmon(count: number): Promise<ConmonResult> {
  const conmon = which("conmon");
  const runc = which("runc");
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (conmon === null) {
    return { ok: false, reason: "conmon is not installed (apt-get install conmon)" };
  }
  if (runc === null) return { ok: false, reason: "runc is not installed" };
  if (busybox === undefined) return { ok: false, reason: "busybox-static is not installed" };
  if (Deno.uid() !== 0) return { ok: false, reason: "needs root to run runc containers" };

  const version = (await run([conmon, "--version"])).out.split("\n")[0] ?? "conmon";
  const tmp = await Deno.makeTempDir({ prefix: "reaperd-bench-conmon-" });
  const root = `${tmp}/runc`;
  const bundle = `${tmp}/bundle`;
  const tag = crypto.randomUUID().slice(0, 8);
  const ids = Array.from({ length: count }, (_, i) => `reaperd-bench-${tag}-${i}`);
  const conmonPids: number[] = [];
  setSubreaper(true);
  try {
    await Deno.mkdir(`${bundle}/rootfs/bin`, { recursive: true });
    for (const d of ["exits", "sockets", "pids", "logs"]) await Deno.mkdir(`${tmp}/${d}`);
    await Deno.copyFile(busybox, `${bundle}/rootfs/bin/busybox`);
    await Deno.chmod(`${bundle}/rootfs/bin/busybox`, 0o755);
    await Deno.symlink("busybox", `${bundle}/rootfs/bin/sleep`);
    const spec = await run([runc, "spec", "--bundle", bundle]);
    if (!spec.ok) return { ok: false, reason: `runc spec failed: ${spec.out}` };
    const config = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
    config.process.terminal = false;
    config.process.args = ["sleep", "3600"];
    config.root = { path: "rootfs", readonly: true };
    await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(config));

    for (const id of ids) {
      // As podman runs it: conmon forks, its parent returns, and the monitor lives on (under
      // this process, a child subreaper, so that it is reaped here when it ends).
      const started = await run([
        conmon,
        "--api-version",
        "1",
        "-c",
        id,
        "-u",
        id,
        "-n",
        id,
        "-r",
        runc,
        "-b",
        bundle,
        "-p",
        `${tmp}/pids/${id}.pid`,
        "-P",
        `${tmp}/pids/${id}.conmon.pid`,
        "-l",
        `k8s-file:${tmp}/logs/${id}.log`,
        "--exit-dir",
        `${tmp}/exits`,
        "--socket-dir-path",
        `${tmp}/sockets`,
        "--runtime-arg",
        "--root",
        "--runtime-arg",
        root,
      ]);
      let pid = NaN;
      try {
        pid = Number((await Deno.readTextFile(`${tmp}/pids/${id}.conmon.pid`)).trim());
      } catch {
        // No pid file: conmon failed.
      }
      if (!started.ok || !Number.isSafeInteger(pid)) {
        return { ok: false, reason: `conmon did not start ${id}: ${started.out || "no pid file"}` };
      }
      conmonPids.push(pid);
      if (!await waitForState(runc, root, id, "created")) {
        return { ok: false, reason: `conmon did not create ${id} within 10 s` };
      }
      const start = await run([runc, "--root", root, "start", id]);
      if (!start.ok) return { ok: false, reason: `runc start ${id} failed: ${start.out}` };
    }
    // Let every conmon settle into its steady state (log pipes open, container running).
    await sleep(1000);
    const states = await run([runc, "--root", root, "list", "-q"]);
    const listed = states.out.split("\n").filter((l) => l !== "").length;
    if (listed !== count) {
      return { ok: false, reason: `runc lists ${listed} of ${count} containers` };
    }
    const memories = conmonPids.map(readMemory);
    const mean = (f: (m: Memory) => number) => memories.reduce((s, m) => s + f(m), 0) / count;
    return {
      ok: true,
      version,
      count,
      mean: {
        rssKiB: mean((m) => m.rssKiB),
        anonKiB: mean((m) => m.anonKiB),
        pssKiB: mean((m) => m.pssKiB),
      },
      fds: conmonPids.reduce((s, p) => s + countFds(p), 0) / count,
    };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    for (const id of ids) await run([runc, "--root", root, "kill", id, "9"]).catch(() => {});
    const deadline = Date.now() + 10_000;
    while (conmonPids.some(alive) && Date.now() < deadline) await sleep(50);
    for (const pid of conmonPids) {
      try {
        if (alive(pid)) Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone.
      }
      reap(pid);
    }
    setSubreaper(false);
    for (const id of ids) {
      await run([runc, "--root", root, "delete", "--force", id]).catch(() => {});
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
