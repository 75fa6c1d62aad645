/**
 * The Deno flags `reaperd serve` needs when it runs from the bundle (`deno run … reaperd.js`),
 * where no deno.json turns them on. Without them the daemon would stop at its first use of an
 * unstable API ("Deno.openKv is not a function"); `serve` checks first and says what to run.
 *
 * @module
 */

/** deno.json's `unstable` list: what the daemon is built and tested with. */
export const SERVE_UNSTABLE = ["kv", "net", "no-legacy-abort"] as const;

/** The flags as a command line takes them. */
export const SERVE_FLAGS: string = SERVE_UNSTABLE.map((f) => `--unstable-${f}`).join(" ");

/** An API each checkable feature brings; `no-legacy-abort` changes behaviour, not the API. */
const PROBES: Record<string, () => boolean> = {
  kv: () => typeof (Deno as { openKv?: unknown }).openKv === "function",
  net: () => typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function",
};

/**
 * The one-line reason `serve` cannot run in this Deno, or null when the flags are there.
 *
 * @param probes What to check (tests pass their own).
 */
export function missingServeFlags(probes: Record<string, () => boolean> = PROBES): string | null {
  const missing = Object.entries(probes).filter(([, present]) => !present()).map(([f]) => f);
  if (missing.length === 0) return null;
  return `serve needs Deno's ${missing.map((f) => `--unstable-${f}`).join(" ")}: ` +
    `run it as: deno run -A ${SERVE_FLAGS} ${script()} serve`;
}

/** The script being run, as the user would name it again. */
function script(): string {
  const main = new URL(Deno.mainModule);
  return main.protocol === "file:" ? decodeURIComponent(main.pathname) : main.href;
}
