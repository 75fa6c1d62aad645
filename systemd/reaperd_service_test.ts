import assert from "node:assert/strict";
import { needs } from "../tests/support/needs.ts";

const UNIT = new URL("./reaperd.service", import.meta.url);

/** The unit's `Key=value` lines by key (all values, in order). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("[")) continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

/** The installed systemd's version number (252 for "systemd 252 (…)"), or 0. */
function systemdVersion(): number {
  try {
    const out = new Deno.Command("systemd-analyze", { args: ["--version"], stderr: "null" })
      .outputSync();
    return Number(/^systemd (\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Keys the unit uses that systemd knows only from this version on. */
const NEWER_KEYS: Record<string, number> = { FileDescriptorStorePreserve: 254 };

needs("systemd-analyze").test(
  "systemd/reaperd.service passes systemd-analyze verify without a single complaint",
  async () => {
    const text = await Deno.readTextFile(UNIT);
    const dir = await Deno.makeTempDir();
    try {
      // verify checks that ExecStart's binary exists and is executable; on a build machine the
      // installed /usr/lib/reaperd/deno is not there, so point it at the deno running this
      // test. Everything else is verified as shipped.
      let unit = text.replace(
        "ExecStart=/usr/lib/reaperd/deno ",
        `ExecStart=${Deno.execPath()} `,
      );
      assert.notEqual(unit, text, "ExecStart must start with /usr/lib/reaperd/deno");
      // An older systemd warns about a key it does not know yet (and runs the unit without it):
      // verify the rest on such a machine.
      const version = systemdVersion();
      for (const [key, since] of Object.entries(NEWER_KEYS)) {
        if (version < since) unit = unit.replace(new RegExp(`^${key}=.*$`, "m"), "");
      }
      const path = `${dir}/reaperd.service`;
      await Deno.writeTextFile(path, unit);
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", "--man=no", path],
        stdout: "piped",
        stderr: "piped",
        env: { SYSTEMD_LOG_COLOR: "0" },
      }).output();
      const messages = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      // verify exits 0 even for unknown keys and bad values: every line it prints is a defect.
      const about = messages.split("\n").filter((l) => l.includes("reaperd.service"));
      assert.deepEqual(about, [], messages);
      assert.equal(out.code, 0, messages);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("systemd/reaperd.service keeps what the design requires", async () => {
  const d = directives(await Deno.readTextFile(UNIT));
  const one = (key: string) => d.get(key)?.at(-1);
  assert.equal(one("Type"), "notify");
  assert.equal(one("NotifyAccess"), "main");
  assert.equal(one("KillMode"), "process");
  assert.equal(one("Restart"), "on-failure");
  assert.equal(one("WatchdogSec"), "30");
  assert.equal(one("LimitNOFILE"), "1048576");
  assert.ok(Number(one("FileDescriptorStoreMax")) >= 10_000, "room for a large host's FIFOs");
  assert.equal(one("FileDescriptorStorePreserve"), "yes");
  assert.equal(one("RuntimeDirectory"), "reaperd");
  assert.equal(one("StateDirectory"), "reaperd");
  assert.equal(one("NoNewPrivileges"), "yes");
  const exec = one("ExecStart") ?? "";
  assert.match(exec, /^\/usr\/lib\/reaperd\/deno run --no-config --cached-only /);
  for (
    const flag of ["--unstable-kv", "--unstable-net", "--unstable-no-legacy-abort", "--allow-all"]
  ) {
    assert.ok(exec.split(" ").includes(flag), flag);
  }
  assert.match(exec, / \/usr\/lib\/reaperd\/reaperd\.js serve$/);
  // Any of these would put the service in its own mount namespace, where umount cannot reach
  // the host's container mounts.
  for (const key of ["ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectControlGroups"]) {
    assert.equal(d.get(key), undefined, `${key} must stay out (see the unit's comments)`);
  }
});
