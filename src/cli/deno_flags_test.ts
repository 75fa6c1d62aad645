import assert from "node:assert/strict";
import { missingServeFlags, SERVE_FLAGS, SERVE_UNSTABLE } from "./deno_flags.ts";

Deno.test("the flags serve asks for are deno.json's unstable list", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as { unstable: string[] };
  assert.deepEqual([...SERVE_UNSTABLE], config.unstable);
  assert.equal(SERVE_FLAGS, "--unstable-kv --unstable-net --unstable-no-legacy-abort");
});

Deno.test("missingServeFlags() names what is missing and the whole command line", () => {
  assert.equal(missingServeFlags(), null, "the tests run with deno.json's flags");
  const message = missingServeFlags({ kv: () => false, net: () => true });
  assert.match(
    message ?? "",
    /^serve needs Deno's --unstable-kv: run it as: deno run -A --unstable-kv --unstable-net --unstable-no-legacy-abort \S+ serve$/,
  );
});
