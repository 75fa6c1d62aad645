import assert from "node:assert/strict";
import { DEFAULT_GC } from "../config.ts";
import { DEFAULT_STEP_TIMEOUT_MS, defaultCleanupSettings } from "./config.ts";

Deno.test("default settings match iSulad's 10 x 100 ms kill checks", () => {
  const s = defaultCleanupSettings("/var/run/isulad");
  assert.equal(s.stateRoot, "/var/run/isulad");
  assert.equal(s.killChecks, 10);
  assert.equal(s.killCheckIntervalMs, 100);
  assert.ok(s.stepTimeoutMs > 0);
});

Deno.test("one step timeout default, the config's and the cleaner's", () => {
  assert.equal(defaultCleanupSettings("/s").stepTimeoutMs, DEFAULT_STEP_TIMEOUT_MS);
  assert.equal(DEFAULT_GC.stepTimeoutMs, DEFAULT_STEP_TIMEOUT_MS);
});
