import assert from "node:assert/strict";
import { compileArgs } from "./compile.ts";

const SCRIPT = new URL("./compile.ts", import.meta.url).pathname;

async function runScript(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-run", "--allow-read", SCRIPT],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("compile.ts without DENORT_BIN says why and what to do, and exits 1", async () => {
  const r = await runScript({ PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /DENORT_BIN is not set/);
  assert.match(r.stderr, /DENORT_BIN=\/path\/to\/denort deno task compile/);
  assert.match(r.stderr, /deno task bundle/);
});

Deno.test("compile.ts refuses a DENORT_BIN that is not an executable file", async () => {
  const r = await runScript({ DENORT_BIN: "/nonexistent/denort" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /DENORT_BIN=\/nonexistent\/denort does not exist/);
});

Deno.test("compileArgs() fixes the unit's unstable features and permissions into the binary", () => {
  const args = compileArgs();
  assert.equal(args[0], "compile");
  for (
    const flag of ["--unstable-kv", "--unstable-net", "--unstable-no-legacy-abort", "--allow-all"]
  ) {
    assert.ok(args.includes(flag), flag);
  }
  assert.deepEqual(args.slice(-3), ["-o", "dist/reaperd", "main.ts"]);
});
