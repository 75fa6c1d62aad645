import assert from "node:assert/strict";
import { runtimeArgv, runtimeRoot, saysNotRunning, saysNotThere, tail } from "./runtime_cli.ts";

const dir = "/var/run/isulad/runc/c1";

Deno.test("runtimeArgv puts config args first, then --root, then the subcommand", () => {
  const call = { name: "runc", spec: { path: "/usr/sbin/runc", args: ["--debug"] }, stateDir: dir };
  assert.deepEqual(runtimeArgv(call, ["delete", "--force", "c1"]), [
    "/usr/sbin/runc",
    "--debug",
    "--root",
    `${dir}/runc`,
    "delete",
    "--force",
    "c1",
  ]);
  assert.equal(runtimeRoot(call), `${dir}/runc`);
});

Deno.test("kata is called without --root", () => {
  const call = { name: "kata", spec: { path: "/usr/bin/kata-runtime", args: [] }, stateDir: dir };
  assert.deepEqual(runtimeArgv(call, ["kill", "c1", "9"]), [
    "/usr/bin/kata-runtime",
    "kill",
    "c1",
    "9",
  ]);
  assert.equal(runtimeRoot(call), null);
});

Deno.test("the runtimes' ways of saying 'no such container' are recognised", () => {
  assert.ok(saysNotThere('time="x" level=error msg="container does not exist"'));
  assert.ok(saysNotThere("error opening file `/run/crun/c1/status`: No such file or directory"));
  assert.ok(saysNotThere("chdir /var/run/isulad/runc/c1 failed"));
  assert.ok(!saysNotThere("device or resource busy"));
  assert.ok(!saysNotThere("error opening file `/run/crun/c1/config.json`: Permission denied"));
});

Deno.test("the runtimes' ways of saying 'not running' are recognised", () => {
  assert.ok(saysNotRunning('level=error msg="container not running"'));
  assert.ok(saysNotRunning("kill container: No such process"));
  assert.ok(!saysNotRunning("permission denied"));
});

Deno.test("tail keeps the end of long text", () => {
  assert.equal(tail("  short \n", 10), "short");
  const t = tail("a".repeat(50) + "END", 10);
  assert.equal(t.length, 10);
  assert.ok(t.endsWith("END") && t.startsWith("…"));
});
