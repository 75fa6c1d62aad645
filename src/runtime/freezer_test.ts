import assert from "node:assert/strict";
import { parseMountInfo } from "../sys/mounts.ts";
import { readProcStat } from "../sys/proc.ts";
import { freezerFiles, freezerFilesOf, parseProcCgroup, thawProcess } from "./freezer.ts";
import { needs } from "../../tests/support/needs.ts";

const withFreezerV1 = needs("root", "freezer-v1");

const CGROUP = [
  "9:name=systemd:/c2",
  "6:freezer:/c2",
  "4:memory:/process_api/eb58/c2",
  "0::/c2",
  "",
].join("\n");

const MOUNTS = parseMountInfo([
  "30 26 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer",
  "31 26 0:27 /process_api /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "32 26 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n"));

Deno.test("parseProcCgroup reads v1, named and v2 lines", () => {
  assert.deepEqual(parseProcCgroup(CGROUP), [
    { hierarchy: 9, controllers: ["name=systemd"], path: "/c2" },
    { hierarchy: 6, controllers: ["freezer"], path: "/c2" },
    { hierarchy: 4, controllers: ["memory"], path: "/process_api/eb58/c2" },
    { hierarchy: 0, controllers: [], path: "/c2" },
  ]);
});

Deno.test("freezerFilesOf maps cgroup paths through the mounts", () => {
  assert.deepEqual(freezerFilesOf(parseProcCgroup(CGROUP), MOUNTS), {
    v1: "/sys/fs/cgroup/freezer/c2/freezer.state",
    v2: "/sys/fs/cgroup/unified/c2/cgroup.freeze",
  });
  // A freezer mounted from a sub-tree (root "/outer") sees only what lies under it.
  const nested = parseMountInfo("30 26 0:26 /outer /fz rw - cgroup cgroup rw,freezer");
  assert.deepEqual(
    freezerFilesOf(parseProcCgroup("6:freezer:/outer/c3\n"), nested).v1,
    "/fz/c3/freezer.state",
  );
  assert.equal(freezerFilesOf(parseProcCgroup("6:freezer:/other\n"), nested).v1, null);
  assert.deepEqual(freezerFilesOf(parseProcCgroup(CGROUP), []), { v1: null, v2: null });
  assert.deepEqual(freezerFiles(0), { v1: null, v2: null });
});

async function waitFor(what: string, test: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(test(), what);
}

withFreezerV1.test("thawProcess thaws a task frozen in a cgroup v1 freezer (state D)", async () => {
  const freezerRoot = "/sys/fs/cgroup/freezer";
  await Deno.stat(`${freezerRoot}/cgroup.procs`).catch(() => {
    throw new Error(`no cgroup v1 freezer at ${freezerRoot}: the kill path cannot be tested`);
  });
  const dir = `${freezerRoot}/reaperd-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir);
  const child = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
  try {
    await Deno.writeTextFile(`${dir}/cgroup.procs`, String(child.pid));
    assert.equal(freezerFiles(child.pid).v1, `${dir}/freezer.state`);
    await Deno.writeTextFile(`${dir}/freezer.state`, "FROZEN");
    await waitFor("frozen task in D", () => readProcStat(child.pid)?.state === "D");

    const report = thawProcess(child.pid);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.thawed, [`${dir}/freezer.state`]);
    await waitFor("thawed task sleeping", () => readProcStat(child.pid)?.state === "S");
    assert.equal(Deno.readTextFileSync(`${dir}/freezer.state`).trim(), "THAWED");
    // Nothing left to thaw: no write.
    assert.deepEqual(thawProcess(child.pid).thawed, []);
  } finally {
    await Deno.writeTextFile(`${dir}/freezer.state`, "THAWED").catch(() => {});
    child.kill("SIGKILL");
    await child.status;
    await waitFor("cgroup empty", () => Deno.readTextFileSync(`${dir}/cgroup.procs`) === "");
    await Deno.remove(dir);
  }
});
