/**
 * reaperd's only entry point: `reaperd serve` runs the daemon, every other command talks to it
 * over its socket. See `reaperd --help`.
 *
 * @module
 */

import { runCli } from "./src/cli/program.ts";

if (import.meta.main) {
  // Exit explicitly: the daemon's timers and the client's pool must not decide when we stop.
  Deno.exit(await runCli(Deno.args));
}
