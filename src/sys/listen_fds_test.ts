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

Deno.test("parseListenFds() takes no count past what a process can hold: none of them", () => {
  for (const count of [String(2 ** 32), "99999999999999999999", "1048577"]) {
    assert.deepEqual(parseListenFds(env({ LISTEN_FDS: count, LISTEN_PID: "42" }), 42), [], count);
  }
  assert.equal(
    parseListenFds(env({ LISTEN_FDS: "1048576", LISTEN_PID: "42" }), 42).length,
    1048576,
  );
});
