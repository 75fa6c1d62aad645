import assert from "node:assert/strict";
import { decodeExitStatus, describeBytes, encodeExitStatus } from "./exit_status.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("decodeExitStatus() decodes a 4-byte code and derives the signal", () => {
  for (
    const [code, signal] of [[0, null], [7, null], [128, null], [137, 9], [143, 15], [255, null]]
  ) {
    const s = decodeExitStatus(encodeExitStatus(code!), 4, false, 1);
    assert.deepEqual(
      { code: s?.code, signal: s?.signal, known: s?.known },
      { code, signal, known: true },
    );
  }
});

Deno.test("decodeExitStatus() waits for more while fewer than 4 bytes and no hang-up", () => {
  assert.equal(decodeExitStatus(bytes(3), 1, false, 0), null);
  assert.equal(decodeExitStatus(bytes(), 0, false, 0), null);
});

Deno.test("decodeExitStatus() names what arrived when it is not an exit code", () => {
  const none = decodeExitStatus(bytes(), 0, true, 0)!;
  assert.equal(none.known, false);
  assert.equal(none.code, null);
  assert.match(none.reason, /no status before hang-up/);

  const short = decodeExitStatus(bytes(1, 2), 2, true, 0)!;
  assert.match(short.reason, /short status: 2 of 4 bytes.*\[01 02\]/);

  const garbled = decodeExitStatus(new TextEncoder().encode("hello"), 5, false, 0)!;
  assert.equal(garbled.known, false);
  assert.match(garbled.reason, /outside 0–255.*text "hell"/);

  const text = decodeExitStatus(new TextEncoder().encode("137\n"), 4, false, 0)!;
  assert.equal(text.known, false);
  assert.match(text.reason, /outside 0–255.*text "137\\n"/);

  const negative = decodeExitStatus(encodeExitStatus(-1), 4, true, 0)!;
  assert.match(negative.reason, /status value -1/);
});

Deno.test("decodeExitStatus() takes the first complete status when more bytes follow", () => {
  const two = decodeExitStatus(bytes(7, 0, 0, 0, 9, 0, 0, 0), 8, false, 0)!;
  assert.deepEqual({ code: two.code, known: two.known }, { code: 7, known: true });
});

Deno.test("describeBytes() caps what it shows", () => {
  assert.match(describeBytes(new Uint8Array(40), 40), /…\(40 bytes in all\)/);
});
