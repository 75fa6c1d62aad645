/**
 * What machine the benchmark ran on, for the report.
 *
 * @module
 */

/** The facts RESULTS.md records. */
export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  deno: string;
  v8: string;
  /** The filesystem the temp dirs (and so the KV stores) live on. */
  tmpFs: string;
  /** The repo's commit, with "+dirty" when the work tree has changes. */
  commit: string;
}

async function git(args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args,
      cwd: new URL("../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

/** The 1-, 5- and 15-minute load averages, as /proc/loadavg has them. */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

/** Reads /proc and friends. */
export async function describeMachine(): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const cpu = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown";
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length || navigator.hardwareConcurrency;
  const memKiB = Number(
    (await Deno.readTextFile("/proc/meminfo")).match(/^MemTotal:\s+(\d+)/m)?.[1],
  );
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  let tmpFs = "unknown";
  try {
    // The longest mount point that is a prefix of the temp dir.
    let best = "";
    for (const line of (await Deno.readTextFile("/proc/self/mounts")).split("\n")) {
      const [dev, point, type] = line.split(" ");
      if (
        point !== undefined &&
        (tmp === point || tmp.startsWith(point.endsWith("/") ? point : point + "/") ||
          point === "/") &&
        point.length >= best.length
      ) {
        best = point;
        tmpFs = `${type} on ${dev} (${point})`;
      }
    }
  } catch {
    // No mounts file.
  }
  const head = await git(["rev-parse", "--short", "HEAD"]);
  const dirty = (await git(["status", "--porcelain"])) !== "";
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    cpu,
    cores,
    memoryGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    tmpFs,
    commit: head === "" ? "unknown" : `${head}${dirty ? "+dirty" : ""}`,
  };
}
