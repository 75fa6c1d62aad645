import assert from "node:assert/strict";
import { defaultCleanupSettings, usesRootFlag } from "./config.ts";

Deno.test("only kata skips --root by default, and a spec can say otherwise", () => {
  assert.ok(usesRootFlag("runc", { path: "/x", args: [] }));
  assert.ok(usesRootFlag("crun", { path: "/x", args: [] }));
  assert.ok(!usesRootFlag("kata", { path: "/x", args: [] }));
  assert.ok(!usesRootFlag("kata-qemu", { path: "/x", args: [] }));
  assert.ok(usesRootFlag("kata", { path: "/x", args: [], root: true }));
  assert.ok(!usesRootFlag("runc", { path: "/x", args: [], root: false }));
});

Deno.test("default settings match iSulad's 10 x 100 ms kill checks", () => {
  const s = defaultCleanupSettings("/var/run/isulad");
  assert.equal(s.stateRoot, "/var/run/isulad");
  assert.equal(s.killChecks, 10);
  assert.equal(s.killCheckIntervalMs, 100);
  assert.ok(s.stepTimeoutMs > 0);
});
