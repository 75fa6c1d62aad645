/**
 * A stand-in for many shims at once: opens the write end of every FIFO listed in the file
 * given as its argument (one path a line), says "ready", then for each line "index code" on
 * stdin writes that status into FIFO number `index` the way isulad-shim does (4 raw bytes) and
 * closes it. Ends, closing all, when stdin closes.
 */
import { encodeExitStatus } from "../../src/supervisor/exit_status.ts";
import * as libc from "../../src/sys/libc.ts";

const paths = (await Deno.readTextFile(Deno.args[0]!)).split("\n").filter((p) => p !== "");
const fds = paths.map((p) => libc.open(p, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC));
const out = Deno.stdout.writable.getWriter();
await out.write(new TextEncoder().encode("ready\n"));

let pending = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop()!;
  for (const line of lines) {
    const [index, code] = line.split(" ").map(Number);
    const fd = fds[index!]!;
    libc.write(fd, encodeExitStatus(code!));
    libc.close(fd);
    fds[index!] = -1;
  }
}
for (const fd of fds) if (fd >= 0) libc.close(fd);
