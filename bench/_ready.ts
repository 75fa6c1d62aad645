/**
 * Starts one of the benchmark's helper processes (the writer, the readers, the C floor), each of
 * which prints `ready` once it can take work and then answers in lines.
 *
 * @module
 */

import { lines } from "./_lines.ts";

/** A helper process past its `ready` line, and the lines it prints after. */
export interface ReadyProcess {
  child: Deno.ChildProcess;
  replies: AsyncGenerator<string>;
}

/**
 * Starts `command` with `args` (stdout piped, stderr inherited) and waits for its first line;
 * throws naming `what` when that line is not `ready`.
 */
export async function spawnReady(
  what: string,
  command: string,
  args: string[],
  stdin: "piped" | "null",
): Promise<ReadyProcess> {
  const child = new Deno.Command(command, { args, stdin, stdout: "piped", stderr: "inherit" })
    .spawn();
  const replies = lines(child.stdout);
  const first = await replies.next();
  if (first.value !== "ready") throw new Error(`${what} did not start: ${first.value}`);
  return { child, replies };
}
