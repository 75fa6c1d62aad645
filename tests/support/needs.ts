/**
 * What a test needs from the machine beyond Deno: root, runc, a static busybox, a C compiler,
 * systemd-analyze, FUSE, a cgroup v1 freezer, a memory cgroup. `deno task test` installs the
 * packages when it can (scripts/setup.sh, as root with apt); where it could not, a test that
 * needs a missing one is reported as ignored, its name saying what is missing and the exact
 * command that would enable it, instead of failing for a missing package.
 *
 * ```ts
 * const withRunc = needs("root", "runc", "busybox", "cc");
 * withRunc.test("runc: exit 3 is recorded", async () => {});
 * ```
 *
 * @module
 */

/** Something a test may need that a checkout of reaperd does not bring. */
export type Need =
  | "root"
  | "runc"
  | "busybox"
  | "cc"
  | "systemd-analyze"
  | "fuse"
  | "freezer-v1"
  | "memory-cgroup";

/** The part of the machine {@linkcode missingNeeds} looks at (the real one by default). */
export interface Machine {
  /** The effective uid. */
  uid: number;
  /** The environment (PATH, CC). */
  env: Record<string, string | undefined>;
  /** True when `path` exists (any type). */
  exists(path: string): boolean;
}

/** One missing need: why, and what enables it. */
export interface Missing {
  /** The need. */
  need: Need;
  /** What is missing, in words ("no runc on PATH"). */
  why: string;
  /** Debian packages that provide it (installed with apt-get), if any. */
  packages: string[];
  /** Any other command that enables it, if no package does. */
  command: string | null;
}

/** The machine this process runs on. */
export function thisMachine(): Machine {
  return {
    uid: Deno.uid() ?? -1,
    env: Deno.env.toObject(),
    exists(path) {
      try {
        Deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** The first executable file named `name` on `$PATH` (or `name` itself when it has a `/`). */
export function findOnPath(name: string, env: Machine["env"] = Deno.env.toObject()): string | null {
  const candidates = name.includes("/")
    ? [name]
    : (env.PATH ?? "").split(":").filter((d) => d !== "").map((d) => `${d}/${name}`);
  for (const path of candidates) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return path;
    } catch {
      // Not here; look further.
    }
  }
  return null;
}

/**
 * True when the ELF file at `path` has no program interpreter: it runs without a libc in the
 * container's rootfs. Debian's `busybox` is dynamic, `busybox-static` is not.
 */
export function isStaticElf(path: string): boolean {
  let bytes: Uint8Array;
  try {
    const file = Deno.openSync(path);
    try {
      bytes = new Uint8Array(64 * 1024);
      const n = file.readSync(bytes) ?? 0;
      bytes = bytes.subarray(0, n);
    } finally {
      file.close();
    }
  } catch {
    return false;
  }
  // 64-bit little-endian ELF only: every platform reaperd runs on.
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[4] !== 2) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(32, true));
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > bytes.length) return false;
    if (view.getUint32(at, true) === 3) return false; // PT_INTERP
  }
  return true;
}

/** A static busybox for the test containers' rootfs, or null. */
export function findStaticBusybox(env: Machine["env"] = Deno.env.toObject()): string | null {
  const found = findOnPath("busybox", env);
  return found !== null && isStaticElf(found) ? found : null;
}

/** The runc binary on PATH, or an error naming the package (call it only under `needs`). */
export function findRunc(env: Machine["env"] = Deno.env.toObject()): string {
  const found = findOnPath("runc", env);
  if (found === null) throw new Error("runc not found on PATH: install it (apt-get install runc)");
  return found;
}

const RUN_AS_ROOT = "sudo npx --yes deno@2.9.6 task test";

/** Which of `needs` the machine lacks, each with what would enable it. */
export function missingNeeds(needs: readonly Need[], machine: Machine = thisMachine()): Missing[] {
  const missing: Missing[] = [];
  const tool = (need: Need, name: string, packages: string[]) => {
    if (findOnPath(name, machine.env) === null) {
      missing.push({ need, why: `no ${name} on PATH`, packages, command: null });
    }
  };
  for (const need of new Set(needs)) {
    switch (need) {
      case "root":
        if (machine.uid !== 0) {
          missing.push({ need, why: "not root", packages: [], command: RUN_AS_ROOT });
        }
        break;
      case "runc":
        tool(need, "runc", ["runc"]);
        break;
      case "systemd-analyze":
        tool(need, "systemd-analyze", ["systemd"]);
        break;
      case "busybox":
        if (findStaticBusybox(machine.env) === null) {
          missing.push({
            need,
            why: "no static busybox on PATH",
            packages: ["busybox-static"],
            command: null,
          });
        }
        break;
      case "cc": {
        const cc = machine.env.CC || "cc";
        if (findOnPath(cc, machine.env) === null || !machine.exists("/usr/include/stdio.h")) {
          missing.push({
            need,
            why: `no C compiler (${cc}) with libc headers`,
            packages: ["gcc", "libc6-dev"],
            command: null,
          });
        }
        break;
      }
      case "fuse":
        if (!machine.exists("/dev/fuse")) {
          missing.push({
            need,
            why: "no /dev/fuse",
            packages: [],
            command: "modprobe fuse (in a container: give it /dev/fuse)",
          });
        }
        break;
      case "freezer-v1":
        if (!machine.exists("/sys/fs/cgroup/freezer/cgroup.procs")) {
          missing.push({
            need,
            why: "no cgroup v1 freezer at /sys/fs/cgroup/freezer",
            packages: [],
            command: "mkdir -p /sys/fs/cgroup/freezer && " +
              "mount -t cgroup -o freezer freezer /sys/fs/cgroup/freezer",
          });
        }
        break;
      case "memory-cgroup":
        if (
          !machine.exists("/sys/fs/cgroup/memory/memory.oom_control") &&
          !machine.exists("/sys/fs/cgroup/cgroup.subtree_control")
        ) {
          missing.push({
            need,
            why: "no memory cgroup controller",
            packages: [],
            command: "boot with cgroup_enable=memory",
          });
        }
        break;
    }
  }
  return missing;
}

/** The words an ignored test's name ends with: what is missing and what would enable it. */
export function describeMissing(missing: readonly Missing[]): string {
  const packages = [...new Set(missing.flatMap((m) => m.packages))];
  const commands = [...new Set(missing.flatMap((m) => m.command === null ? [] : [m.command]))];
  const enable = [
    ...(packages.length === 0 ? [] : [`as root: apt-get install -y ${packages.join(" ")}`]),
    ...commands,
  ];
  return `ignored: ${missing.map((m) => m.why).join(", ")}; to run it: ${enable.join("; ")}`;
}

/** Test options without `ignore`, which the guard decides. */
export type GuardedDefinition = Omit<Deno.TestDefinition, "fn" | "ignore">;

/** Registers tests that run only where the machine has what they need. */
export interface TestGuard {
  /** What the machine lacks of the needs (empty: the tests run). */
  readonly missing: readonly Missing[];
  /** `Deno.test(name, fn)`, ignored with the reason in its name when something is missing. */
  test(name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void;
  /** `Deno.test(options, fn)`, likewise. */
  test(options: GuardedDefinition, fn: (t: Deno.TestContext) => void | Promise<void>): void;
}

/**
 * A guard for tests that need `needs`. Where the machine has them all its tests are plain
 * `Deno.test`s; else each is registered ignored, named `<name> (ignored: <what is missing>; to
 * run it: <command>)`, so the test report says what to do instead of failing.
 */
export function needs(...needs: Need[]): TestGuard {
  const missing = missingNeeds(needs);
  // With nothing missing the test file calls Deno.test itself, so that failures point at it.
  if (missing.length === 0) return { missing, test: Deno.test };
  const suffix = ` (${describeMissing(missing)})`;
  return {
    missing,
    test(
      nameOrOptions: string | GuardedDefinition,
      fn: (t: Deno.TestContext) => void | Promise<void>,
    ) {
      const options = typeof nameOrOptions === "string" ? { name: nameOrOptions } : nameOrOptions;
      Deno.test({ ...options, name: options.name + suffix, ignore: true, fn });
    },
  };
}
