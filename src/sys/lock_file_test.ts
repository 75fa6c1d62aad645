import assert from "node:assert/strict";
import { tryLock } from "./lock_file.ts";

Deno.test("tryLock() lets one process hold the lock; another sees the holder's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-lock-" });
  const path = `${dir}/reaperd.db.lock`;
  try {
    const lock = tryLock(path);
    assert.ok("release" in lock);
    const other = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { tryLock } from "${new URL("./lock_file.ts", import.meta.url).href}";
         const r = tryLock("${path}"); Deno.exit("heldBy" in r && r.heldBy === ${Deno.pid} ? 3 : 0);`,
      ],
    }).output();
    assert.equal(other.code, 3, "a second process is refused and told who holds it");
    lock.release();
    const again = tryLock(path);
    assert.ok("release" in again);
    again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
