/**
 * `deno task compile`: one executable, `dist/reaperd`, with `deno compile`. It needs a `denort`
 * of the same Deno version, which deno downloads from dl.deno.land unless `DENORT_BIN` names
 * one; that host is unreachable from machines that only reach npm and Debian, and no npm or
 * Debian package ships denort. So this runs only when `DENORT_BIN` is set, and otherwise says
 * plainly why not and what to use instead (`deno task bundle`).
 *
 * @module
 */

/** The Deno version reaperd is built and tested with; denort must match it. */
export const DENO_VERSION = "2.9.6";

/** Where the executable goes. */
export const OUTPUT = "dist/reaperd";

/**
 * The `deno compile` arguments. Unstable features and permissions are fixed into the binary,
 * so they are the same as the systemd unit's `deno run` line.
 */
export function compileArgs(output = OUTPUT): string[] {
  return [
    "compile",
    "--unstable-kv",
    "--unstable-net",
    "--unstable-no-legacy-abort",
    // Deno 2.9 reads nothing under /proc without it; FFI amounts to all access anyway.
    "--allow-all",
    "-o",
    output,
    "main.ts",
  ];
}

const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stderr.writeSync(encoder.encode(`${text}\n`));
}

/** Why `path` cannot be used as denort, or null when it can. */
function denortProblem(path: string): string | null {
  try {
    const st = Deno.statSync(path);
    if (!st.isFile) return "is not a file";
    if (st.mode !== null && (st.mode & 0o111) === 0) return "is not executable";
    return null;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "does not exist" : String(e);
  }
}

/** Runs the compile when it can; resolves to the exit status. */
export async function main(getEnv: (name: string) => string | undefined): Promise<number> {
  const denort = getEnv("DENORT_BIN");
  if (denort === undefined || denort === "") {
    say(`compile: DENORT_BIN is not set, so ${OUTPUT} cannot be built here.
  deno compile joins the program to "denort", the Deno runtime without its tools, of the very
  same version (${DENO_VERSION}). deno downloads it from dl.deno.land, which this machine cannot
  reach, and no npm or Debian package ships it.
  To compile: get denort ${DENO_VERSION} for this platform (the release asset
  denort-${Deno.build.target}.zip, unpacked), then run
      DENORT_BIN=/path/to/denort deno task compile
  Without it, install the bundle instead (README.md, "Install"):
      deno task bundle   # dist/reaperd.js, run by the deno binary from npm`);
    return 1;
  }
  const problem = denortProblem(denort);
  if (problem !== null) {
    say(`compile: DENORT_BIN=${denort} ${problem}: it must be an unpacked denort ${DENO_VERSION}.`);
    return 1;
  }
  if (Deno.version.deno !== DENO_VERSION) {
    say(
      `compile: warning: this is deno ${Deno.version.deno}; reaperd is built with ${DENO_VERSION}.`,
    );
  }
  const args = compileArgs();
  say(`compile: DENORT_BIN=${denort} deno ${args.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    env: { DENORT_BIN: denort },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code === 0) say(`compile: wrote ${OUTPUT}`);
  return code;
}

if (import.meta.main) {
  Deno.exit(await main((name) => Deno.env.get(name)));
}
