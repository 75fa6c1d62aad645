import assert from "node:assert/strict";
import { parseListenFds } from "./listen_fds.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("parseListenFds() gives fds 3… with their names when LISTEN_PID is this process", () => {
  assert.deepEqual(
    parseListenFds(env({ LISTEN_FDS: "2", LISTEN_PID: "42", LISTEN_FDNAMES: "runc/a:#ff" }), 42),
    [{ fd: 3, name: "runc/a" }, { fd: 4, name: "#ff" }],
  );
});

Deno.test("parseListenFds() ignores fds meant for another process or malformed variables", () => {
  assert.deepEqual(parseListenFds(env({ LISTEN_FDS: "2", LISTEN_PID: "41" }), 42), []);
  assert.deepEqual(parseListenFds(env({ LISTEN_FDS: "x", LISTEN_PID: "42" }), 42), []);
  assert.deepEqual(parseListenFds(env({ LISTEN_FDS: "2" }), 42), []);
  assert.deepEqual(parseListenFds(env({}), 42), []);
});

Deno.test("parseListenFds() names every fd unknown when the names do not match the count", () => {
  assert.deepEqual(
    parseListenFds(env({ LISTEN_FDS: "2", LISTEN_PID: "42", LISTEN_FDNAMES: "only-one" }), 42),
    [{ fd: 3, name: "unknown" }, { fd: 4, name: "unknown" }],
  );
});
