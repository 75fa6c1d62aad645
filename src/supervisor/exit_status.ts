/**
 * Decoding what a shim wrote into an exit FIFO. isulad-shim writes one 4-byte native-endian
 * signed int, the exit code or 128 + signal, then closes. Anything else is not an exit code:
 * it becomes an exit whose status is unknown, with a reason naming what arrived.
 *
 * @module
 */

import { signalName } from "../signal_names.ts";
import type { ExitStatus } from "../types.ts";

/** The size of the status a shim writes. */
export const STATUS_SIZE = 4;

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The highest signal number Linux has (SIGRTMAX). */
const MAX_SIGNAL = 64;

/** The exit status for a known code: the signal is derived when the code is 128 + signal. */
export function knownExit(code: number, at: number): ExitStatus {
  const signal = code > 128 && code <= 128 + MAX_SIGNAL ? code - 128 : null;
  const reason = signal === null
    ? `exited with code ${code}`
    : `killed by signal ${signal} (${signalName(signal)})`;
  return { code, signal, known: true, reason, at };
}

/** An exit whose status was lost or garbled; `reason` says why. */
export function unknownExit(reason: string, at: number): ExitStatus {
  return { code: null, signal: null, known: false, reason, at };
}

/** Describes raw bytes for a reason line: hex, and the text too when it is printable. */
export function describeBytes(bytes: Uint8Array, total = bytes.length): string {
  const shown = bytes.subarray(0, 16);
  const hex = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const more = total > shown.length ? ` …(${total} bytes in all)` : "";
  const printable = shown.length > 0 && shown.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a);
  const text = printable ? ` text ${JSON.stringify(new TextDecoder().decode(shown))}` : "";
  return `[${hex}]${more}${text}`;
}

/**
 * Decodes the bytes read from an exit FIFO. The first {@linkcode STATUS_SIZE} bytes are the
 * status, whatever follows them.
 *
 * @param bytes the first bytes received (at least the first {@linkcode STATUS_SIZE + 1} when
 *   there were more)
 * @param total how many bytes arrived in all
 * @param hungUp whether every writer has closed the FIFO
 * @param at when the exit was noticed
 * @returns the exit status, or null while a well-formed status may still be on its way
 *
 * @example
 * ```ts
 * import { decodeExitStatus } from "./exit_status.ts";
 * const s = decodeExitStatus(new Uint8Array([137, 0, 0, 0]), 4, true, 0);
 * console.assert(s?.code === 137 && s.signal === 9 && s.known);
 * ```
 */
export function decodeExitStatus(
  bytes: Uint8Array,
  total: number,
  hungUp: boolean,
  at: number,
): ExitStatus | null {
  // More than one status's worth (two writers on one FIFO, or a writer that went on): the
  // first complete status is the exit; the caller says what followed.
  if (total >= STATUS_SIZE) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, STATUS_SIZE);
    const value = view.getInt32(0, littleEndian);
    if (value < 0 || value > 255) {
      return unknownExit(
        `status value ${value} is outside 0–255: ` +
          describeBytes(bytes.subarray(0, STATUS_SIZE), total),
        at,
      );
    }
    return knownExit(value, at);
  }
  if (!hungUp) return null;
  if (total === 0) {
    return unknownExit("no status before hang-up: the writer closed the FIFO without writing", at);
  }
  return unknownExit(
    `short status: ${total} of ${STATUS_SIZE} bytes before hang-up: ${describeBytes(bytes, total)}`,
    at,
  );
}

/** Encodes a status the way isulad-shim writes it (for test writers and tools). */
export function encodeExitStatus(code: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(STATUS_SIZE);
  new DataView(buf.buffer).setInt32(0, code, littleEndian);
  return buf;
}
