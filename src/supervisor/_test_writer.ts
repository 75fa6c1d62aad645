/**
 * Test helper: a real writer process that opens an exit FIFO the way isulad-shim does
 * (write-only, blocking), runs a child, and writes the child's wait status as one raw
 * 4-byte little-endian int (128 + signal when killed), or writes the bytes a test asks for.
 *
 * @module
 */

const SCRIPT = `
fifo=$1; mode=$2; arg=$3
exec 3>"$fifo"
case $mode in
  exit) sh -c "exit $arg"; code=$? ;;
  signal) sleep 60 & p=$!; kill -s "$arg" $p; wait $p; code=$? ;;
  raw) printf "$arg" >&3; exit 0 ;;
  none) exit 0 ;;
esac
printf "$(printf '\\\\%03o' "$code")\\\\000\\\\000\\\\000" >&3
`;

/** What the writer does after opening the FIFO. */
export type WriterMode =
  | { exit: number }
  | { signal: "KILL" | "TERM" }
  | { raw: string }
  | { none: true };

/** Starts a writer process on `fifo`; await `.status` for it to end. */
export function startWriter(fifo: string, mode: WriterMode): Deno.ChildProcess {
  const [name, arg] = "exit" in mode
    ? ["exit", String(mode.exit)]
    : "signal" in mode
    ? ["signal", mode.signal]
    : "raw" in mode
    ? ["raw", mode.raw]
    : ["none", ""];
  return new Deno.Command("sh", {
    args: ["-c", SCRIPT, "writer", fifo, name, arg],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}
