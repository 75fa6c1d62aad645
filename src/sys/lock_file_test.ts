import assert from "node:assert/strict";
import { tryLock } from "./lock_file.ts";

Deno.test("tryLock() lets one process hold the lock on the file; another sees the holder's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-lock-" });
  const path = `${dir}/reaperd.db`;
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

Deno.test("tryLock() writes nothing into the locked file and creates it 0600 whatever the umask", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-lock-" });
  const path = `${dir}/reaperd.db`;
  const umask = Deno.umask(0o022);
  try {
    const lock = tryLock(path);
    assert.ok("release" in lock);
    assert.equal(Deno.statSync(path).size, 0);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    lock.release();
  } finally {
    Deno.umask(umask);
    await Deno.remove(dir, { recursive: true });
  }
});
