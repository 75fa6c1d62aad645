/**
 * Where the CLI's words go. Commands write through an {@linkcode Output} instead of `console`
 * so tests can capture them and so every write is synchronous and whole: a line printed by
 * `reaperd wait` is on stdout before the process exits with the container's code.
 *
 * @module
 */

/** The CLI's two streams. */
export interface Output {
  /** Writes to stdout (results). */
  out(text: string): void;
  /** Writes to stderr (errors, notes for people). */
  err(text: string): void;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/**
 * The process's stdout and stderr. A reader that went away (`reaperd events -f | head`)
 * makes `out` throw `Deno.errors.BrokenPipe`, which the CLI turns into a quiet exit.
 */
export function stdio(): Output {
  return {
    out: (text) => writeAll(Deno.stdout, text),
    err: (text) => {
      try {
        writeAll(Deno.stderr, text);
      } catch {
        // Nowhere left to report it.
      }
    },
  };
}

/** An Output that keeps everything, for tests. */
export class MemoryOutput implements Output {
  stdout = "";
  stderr = "";
  out(text: string): void {
    this.stdout += text;
  }
  err(text: string): void {
    this.stderr += text;
  }
}
