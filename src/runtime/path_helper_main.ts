/**
 * The path helper: a small process that does cleanup's filesystem work on a container's paths
 * for the daemon (path_ops.ts), so that a filesystem that never answers blocks this process,
 * never the daemon. It reads one JSON {@linkcode PathOp} per line on stdin, runs it, and
 * writes one JSON {@linkcode PathOpResult} per line on stdout, in order; it says `ready` once
 * it can take work, and ends when stdin closes. The daemon kills it when an answer is late.
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

async function serve(): Promise<void> {
  writeLine("ready");
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let result: PathOpResult;
      try {
        result = await runPathOp(JSON.parse(line) as PathOp);
      } catch (e) {
        result = { ok: false, detail: `bad request: ${errorMessage(e)}`, code: "EINVAL" };
      }
      writeLine(JSON.stringify(result));
    }
  }
}

if (import.meta.main) {
  // Nothing this process touches may keep it from its work: it stays in "/".
  Deno.chdir("/");
  await serve();
  Deno.exit(0);
}
