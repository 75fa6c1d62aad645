/**
 * reaperd's only entry point: `reaperd serve` runs the daemon, every other command talks to it
 * over its socket. See `reaperd --help`.
 *
 * @module
 */

import { runCli } from "./src/cli/program.ts";
import { PATH_HELPER_COMMAND, servePathHelper } from "./src/runtime/path_helper_serve.ts";

if (import.meta.main) {
  // Exit explicitly: the daemon's timers and the client's pool must not decide when we stop.
  // The hidden command is the daemon's path helper, when it runs from a bundle or a binary.
  Deno.exit(
    Deno.args[0] === PATH_HELPER_COMMAND ? await servePathHelper() : await runCli(Deno.args),
  );
}
