import assert from "node:assert/strict";
import { kata, oci } from "./kinds/mod.ts";
import { runtimeArgv, runtimeRoot, saysNotRunning, saysNotThere, tail } from "./runtime_cli.ts";

const dir = "/var/run/isulad/runc/c1";

Deno.test("runtimeArgv puts config args first, then --root, then the subcommand", () => {
  const call = {
    name: "runc",
    spec: { path: "/usr/sbin/runc", args: ["--debug"] },
    kind: oci,
    stateDir: dir,
  };
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

Deno.test("the kata kind is called without --root, whatever the runtime's name", () => {
  const call = {
    name: "vm",
    spec: { path: "/usr/bin/kata-runtime", args: [], kind: "kata" },
    kind: kata,
    stateDir: dir,
  };
  assert.deepEqual(runtimeArgv(call, ["kill", "c1", "9"]), [
    "/usr/bin/kata-runtime",
    "kill",
    "c1",
    "9",
  ]);
  assert.equal(runtimeRoot(call), null);
  // A name is only a name: an oci runtime called "kata-qemu" gets its --root.
  assert.equal(runtimeRoot({ ...call, name: "kata-qemu", kind: oci }), `${dir}/kata-qemu`);
});

Deno.test("a runtime entry's root flag wins over its kind's rule", () => {
  const base = { name: "rt", stateDir: dir };
  assert.equal(
    runtimeRoot({ ...base, spec: { path: "/x", args: [], root: true }, kind: kata }),
    `${dir}/rt`,
  );
  assert.equal(
    runtimeRoot({ ...base, spec: { path: "/x", args: [], root: false }, kind: oci }),
    null,
  );
});

Deno.test("the runtimes' ways of saying 'no such container' are recognised", () => {
  assert.ok(saysNotThere(oci, 'time="x" level=error msg="container does not exist"'));
  assert.ok(
    saysNotThere(oci, "error opening file `/run/crun/c1/status`: No such file or directory"),
  );
  assert.ok(saysNotThere(oci, "chdir /var/run/isulad/runc/c1 failed"));
  assert.ok(saysNotThere(kata, "container does not exist"));
  assert.ok(!saysNotThere(oci, "device or resource busy"));
  assert.ok(!saysNotThere(oci, "error opening file `/run/crun/c1/config.json`: Permission denied"));
});

Deno.test("the runtimes' ways of saying 'not running' are recognised", () => {
  assert.ok(saysNotRunning(oci, 'level=error msg="container not running"'));
  assert.ok(saysNotRunning(oci, "kill container: No such process"));
  assert.ok(!saysNotRunning(oci, "permission denied"));
});

Deno.test("tail keeps the end of long text", () => {
  assert.equal(tail("  short \n", 10), "short");
  const t = tail("a".repeat(50) + "END", 10);
  assert.equal(t.length, 10);
  assert.ok(t.endsWith("END") && t.startsWith("…"));
});
