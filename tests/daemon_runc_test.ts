/**
 * The daemon with the real runc: a busybox container under the test shim exits 3; reaperd
 * records 3, runs `runc kill` and `runc delete` from its config, and removes the state dir.
 */
import assert from "node:assert/strict";
import {
  findRunc,
  makeBusyboxBundle,
  type RunningShim,
  startShim,
  stopShim,
} from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import { needs } from "./support/needs.ts";

const withRunc = needs("root", "runc", "busybox", "cc");

withRunc.test("daemon + runc: exit 3 is recorded as 3, runc delete runs, nothing is left", async () => {
  const runc = findRunc();
  const d = await TestDaemon.start({ runtimes: { runc: { path: runc } } });
  const id = `reaperd-e2e-${crypto.randomUUID().slice(0, 8)}`;
  const stateDir = `${d.stateRoot}/runc/${id}`;
  const bundle = `${d.dir}/bundle`;
  let shim: RunningShim | undefined;
  try {
    await makeBusyboxBundle(bundle, [
      "sh",
      "-c",
      "while [ ! -e /dev/shm/go ]; do sleep 0.05; done; exit 3",
    ], runc);
    const created = await d.api("POST", "/v1/fifos", { stateDir });
    assert.equal(created.status, 200, created.text);
    shim = await startShim({ stateDir, mode: { kind: "runc", runc, id, bundle } });
    const monitored = await d.api("POST", "/v1/containers", {
      id,
      runtime: "runc",
      stateDir,
      pid: shim.container.pid,
      ppid: shim.shim.pid,
    });
    assert.equal(monitored.status, 201, monitored.text);

    const list = async () =>
      new TextDecoder().decode(
        (await new Deno.Command(runc, { args: ["--root", `${stateDir}/runc`, "list", "-q"] })
          .output())
          .stdout,
      );
    assert.match(await list(), new RegExp(`^${id}$`, "m"));

    // The container's /dev/shm is its own tmpfs: reach it through its root.
    await Deno.writeTextFile(`/proc/${shim.container.pid}/root/dev/shm/go`, "");
    const waited = await d.api("GET", `/v1/containers/${id}/wait?timeout=30`);
    assert.equal(waited.status, 200);
    let record = waited.body as { state: string; exit: { code: number; known: boolean } };
    assert.deepEqual([record.exit.code, record.exit.known], [3, true]);

    const deadline = Date.now() + 20_000;
    while (record.state !== "stopped" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      record = (await d.api("GET", `/v1/containers/${id}`)).body as typeof record;
    }
    assert.equal(record.state, "stopped", d.logs);
    await assert.rejects(Deno.stat(stateDir), Deno.errors.NotFound, "state dir removed");
    const after = await new Deno.Command(runc, {
      args: ["--root", `${stateDir}/runc`, "state", id],
      stderr: "piped",
      stdout: "null",
    }).output();
    assert.equal(after.success, false, "runc no longer knows the container");
  } finally {
    await stopShim(shim);
    await new Deno.Command(runc, {
      args: ["--root", `${stateDir}/runc`, "delete", "--force", id],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {});
    await d.dispose();
  }
});
