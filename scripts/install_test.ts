import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
const decoder = new TextDecoder();

/** The flags of the unit's ExecStart and of the installed `reaperd` wrapper. */
const RUN_FLAGS = [
  "run",
  "--no-config",
  "--cached-only",
  "--unstable-kv",
  "--unstable-net",
  "--unstable-no-legacy-abort",
  "--allow-all",
];

Deno.test({
  name:
    "the bundle installs with install.sh and runs with deno alone, offline, from an empty cache",
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const bundle = `${tmp}/reaperd.js`;
      const built = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--platform=deno", "-o", bundle, "main.ts"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(built.code, 0, decoder.decode(built.stderr));

      const dest = `${tmp}/root`;
      const installed = await new Deno.Command("bash", {
        args: ["scripts/install.sh"],
        cwd: ROOT,
        env: { DESTDIR: dest, BUNDLE: bundle, DENO_BIN: Deno.execPath() },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(installed.code, 0, decoder.decode(installed.stderr));
      const lib = `${dest}/usr/lib/reaperd`;
      for (const f of ["deno", "reaperd.js", "README.md"]) await Deno.stat(`${lib}/${f}`);
      await Deno.stat(`${dest}/etc/systemd/system/reaperd.service`);
      const wrapper = await Deno.readTextFile(`${dest}/usr/local/bin/reaperd`);
      const wrapperFlags = wrapper.replace(/\\\n\s*/g, "").match(/deno (run .*) \/usr/)?.[1];
      assert.deepEqual(wrapperFlags?.split(/\s+/), RUN_FLAGS);
      const unit = await Deno.readTextFile(`${ROOT}systemd/reaperd.service`);
      assert.ok(
        unit.includes(
          `/usr/lib/reaperd/deno ${RUN_FLAGS.join(" ")} /usr/lib/reaperd/reaperd.js serve`,
        ),
      );

      const run = async (...args: string[]) => {
        const out = await new Deno.Command(`${lib}/deno`, {
          args: [...RUN_FLAGS, `${lib}/reaperd.js`, ...args],
          env: { DENO_DIR: `${tmp}/empty-deno-dir`, NO_COLOR: "1" },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        return {
          code: out.code,
          stdout: decoder.decode(out.stdout),
          stderr: decoder.decode(out.stderr),
        };
      };
      const help = await run("--help");
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: reaperd /);
      const ps = await run("ps", "--socket", `${tmp}/none.sock`);
      assert.equal(ps.code, 3);
      assert.match(ps.stderr, /cannot reach the daemon at .*none\.sock: is it running\?/);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
