import assert from "node:assert/strict";

const SETUP = new URL("./setup.sh", import.meta.url).pathname;
const decoder = new TextDecoder();

/**
 * Runs setup.sh on a Debian-like machine where every package the tests drive is installed and
 * neither Node nor npx is (deno installed some other way): `dpkg-query` answers for all but
 * nodejs and npm, and PATH holds no npx.
 */
async function setupWithoutNode(...args: string[]) {
  const bin = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${bin}/dpkg-query`,
      `#!/bin/bash
for p in "$@"; do :; done
case "$p" in nodejs|npm) exit 1 ;; esac
printf 'install ok installed'
`,
      { mode: 0o755 },
    );
    for (const tool of ["grep", "id"]) await Deno.symlink(`/usr/bin/${tool}`, `${bin}/${tool}`);
    const out = await new Deno.Command("/bin/bash", {
      args: [SETUP, ...args],
      clearEnv: true,
      env: { PATH: bin, REAPERD_TEST_NO_INSTALL: "1" },
      stdin: "null",
    }).output();
    return { code: out.code, stderr: decoder.decode(out.stderr) };
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

Deno.test("setup.sh asks for Node only for CI, which starts deno through npx", async () => {
  // deno task test runs with the deno it was started by: no test needs Node.
  assert.deepEqual(await setupWithoutNode(), { code: 0, stderr: "" });
  const strict = await setupWithoutNode("--strict");
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /not installing nodejs npm$/m);
});
