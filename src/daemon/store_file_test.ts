import assert from "node:assert/strict";
import type { Logger } from "../log.ts";
import { openStore, StoreInUseError } from "./store_file.ts";

function recordingLog(lines: string[]): Logger {
  const say = (level: string) => (message: string, props?: Record<string, unknown>) =>
    lines.push(`${level} ${message} ${JSON.stringify(props ?? {})}`);
  return { info: say("info"), warn: say("warn"), error: say("error") } as unknown as Logger;
}

const running = (id: string, stateDir: string) => ({
  id,
  runtime: "runc",
  stateDir,
  pid: 0,
  startTime: 0,
  ppid: 0,
  pStartTime: 0,
});

Deno.test("openStore: one opener at a time, a store swapped for another one is reported, a garbled marker is rewritten", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-store-file-" });
  const db = `${dir}/reaperd.db`;
  const lines: string[] = [];
  const log = recordingLog(lines);
  try {
    const first = await openStore({ db, log });
    assert.deepEqual(first.problems, []);
    await first.store.register(running("c1", `${dir}/s/c1`));
    await assert.rejects(openStore({ db, log }), StoreInUseError);
    first.close();
    const marker = JSON.parse(await Deno.readTextFile(`${db}.generation`));
    assert.equal(marker.seq, 1);

    // An older copy of another store put in its place.
    await Deno.rename(db, `${db}.mine`);
    await Deno.remove(`${db}-wal`).catch(() => {});
    await Deno.remove(`${db}-shm`).catch(() => {});
    const savedMarker = await Deno.readTextFile(`${db}.generation`);
    await Deno.remove(`${db}.generation`);
    const other = await openStore({ db, log });
    other.close();
    await Deno.writeTextFile(`${db}.generation`, savedMarker);
    const swapped = await openStore({ db, log });
    assert.equal(swapped.problems.length, 1);
    assert.match(swapped.problems[0]!, /is not the one .* names/);
    swapped.close();
    // Reported once: the marker now names the store that is there.
    const again = await openStore({ db, log });
    assert.deepEqual(again.problems, []);
    again.close();

    await Deno.writeTextFile(`${db}.generation`, "{garbage");
    const garbled = await openStore({ db, log });
    assert.deepEqual(garbled.problems, []);
    garbled.close();
    assert.ok(lines.some((l) => l.startsWith("warn {path} is unreadable")), lines.join("\n"));
    assert.ok(JSON.parse(await Deno.readTextFile(`${db}.generation`)).storeId);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
