import assert from "node:assert/strict";
import {
  assertBackoffPolicy,
  backoffBounds,
  backoffCeiling,
  backoffDelay,
  type BackoffPolicy,
  DEFAULT_BACKOFF,
} from "./backoff.ts";

const policy: BackoffPolicy = { baseMs: 500, maxMs: 60_000, jitter: "equal" };

Deno.test("backoffCeiling() doubles from base per failure and stops at the cap", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => backoffCeiling(n, policy)),
    [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000],
  );
  assert.equal(backoffCeiling(0, policy), 500, "before any failure counts as the first");
  assert.equal(backoffCeiling(1e9, policy), 60_000, "no overflow after very many failures");
  assert.equal(backoffCeiling(1e9, { ...policy, maxMs: Number.MAX_SAFE_INTEGER }) > 0, true);
});

Deno.test("backoffBounds() follows the jitter kind", () => {
  assert.deepEqual(backoffBounds(3, { ...policy, jitter: "full" }), { min: 0, max: 2_000 });
  assert.deepEqual(backoffBounds(3, { ...policy, jitter: "equal" }), { min: 1_000, max: 2_000 });
  assert.deepEqual(backoffBounds(3, { ...policy, jitter: "none" }), { min: 2_000, max: 2_000 });
});

Deno.test("backoffDelay() stays within its bounds for any random draw", () => {
  for (const jitter of ["full", "equal", "none"] as const) {
    for (let failures = 1; failures < 20; failures++) {
      const { min, max } = backoffBounds(failures, { ...policy, jitter });
      for (const r of [0, 0.25, 0.5, 0.999999]) {
        const delay = backoffDelay(failures, { ...policy, jitter }, () => r);
        assert.ok(delay >= Math.floor(min) && delay <= max, `${jitter} ${failures} ${r}: ${delay}`);
        assert.ok(Number.isInteger(delay));
      }
    }
  }
  assert.equal(backoffDelay(2, policy, () => 0), 500);
  assert.equal(backoffDelay(2, policy, () => 0.5), 750);
});

Deno.test("backoffDelay() spreads draws across the whole range", () => {
  const draws = Array.from({ length: 2_000 }, () => backoffDelay(5, policy));
  const { min, max } = backoffBounds(5, policy);
  assert.ok(Math.min(...draws) < min + (max - min) * 0.1);
  assert.ok(Math.max(...draws) > max - (max - min) * 0.1);
});

Deno.test("assertBackoffPolicy() refuses knobs that cannot work", () => {
  assertBackoffPolicy(DEFAULT_BACKOFF);
  assert.throws(() => assertBackoffPolicy({ ...policy, baseMs: 0 }), RangeError);
  assert.throws(() => assertBackoffPolicy({ ...policy, maxMs: 100 }), RangeError);
  assert.throws(() => assertBackoffPolicy({ ...policy, baseMs: NaN }), RangeError);
  assert.throws(
    () => assertBackoffPolicy({ ...policy, jitter: "some" as BackoffPolicy["jitter"] }),
    RangeError,
  );
});
