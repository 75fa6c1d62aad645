/**
 * The path helper's loop: a small process that does cleanup's filesystem work on a container's
 * paths for the daemon (path_ops.ts), so that a filesystem that never answers blocks this
 * process, never the daemon. It reads one JSON {@linkcode PathOp} per line on stdin, runs it,
 * and writes one JSON {@linkcode PathOpResult} per line on stdout, in order; it says `ready`
 * once it can take work, and ends when stdin closes. The daemon kills it when an answer is late.
 *
 * It runs as path_helper_main.ts (a small module graph, quick to start) where the sources are
 * at hand, and as `reaperd __path-helper` from a bundle or a compiled binary.
 *
 * @module
 */

import { errorMessage } from "../error_message.ts";
import { type PathOp, type PathOpResult, runPathOp } from "./path_ops.ts";

const encoder = new TextEncoder();

function writeLine(text: string): void {
  const bytes = encoder.encode(text + "\n");
  let at = 0;
  while (at < bytes.byteLength) at += Deno.stdout.writeSync(bytes.subarray(at));
}

/** The hidden command under which the reaperd program itself serves as the path helper. */
export const PATH_HELPER_COMMAND = "__path-helper";

/**
 * Serves requests on stdin until it closes; resolves to the exit code. Moves to "/" first,
 * so that nothing this process holds keeps it in a container's path.
 */
export async function servePathHelper(): Promise<number> {
  Deno.chdir("/");
  writeLine("ready");
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let result: PathOpResult;
      try {
        result = runPathOp(JSON.parse(line) as PathOp);
      } catch (e) {
        result = { ok: false, detail: `bad request: ${errorMessage(e)}`, code: "EINVAL" };
      }
      writeLine(JSON.stringify(result));
    }
  }
  return 0;
}
