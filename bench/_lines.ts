/**
 * Lines out of text that arrives in pieces: a child process's stdout, a streamed HTTP answer's
 * chunks.
 *
 * @module
 */

/** Splits text arriving in pieces into lines (without their `\n`); a last unended one too. */
export async function* splitLines(pieces: AsyncIterable<string>): AsyncGenerator<string> {
  let pending = "";
  for await (const piece of pieces) {
    pending += piece;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending !== "") yield pending;
}

/** Splits a byte stream into lines. */
export function lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  return splitLines(stream.pipeThrough(new TextDecoderStream()));
}
