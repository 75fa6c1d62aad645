import assert from "node:assert/strict";
import { ApiError } from "./api.ts";
import {
  MAX_WAIT_MS,
  parseCreateFifoRequest,
  parseEventsQuery,
  parseGcAddRequest,
  parseIdSegment,
  parseJson,
  parseMonitorRequest,
  parseWaitQuery,
} from "./validate.ts";

function rejects400(fn: () => unknown, pattern?: RegExp): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    assert.equal(e.status, 400);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.ok(e.message.length < 300, `short: ${e.message}`);
    if (pattern) assert.match(e.message, pattern);
    return e.message;
  }
  assert.fail(`expected a 400 ${pattern ?? ""}`);
}

const monitor = {
  id: "c1",
  runtime: "runc",
  stateDir: "/var/run/isulad/runc/c1",
  pid: 100,
  ppid: 99,
};

Deno.test("parseJson() parses JSON and refuses empty or malformed text", () => {
  assert.deepEqual(parseJson('{"a": 1}'), { a: 1 });
  rejects400(() => parseJson(""), /empty/);
  rejects400(() => parseJson("  \n"), /empty/);
  rejects400(() => parseJson("{"), /not valid JSON/);
  rejects400(() => parseJson("{'a': 1}"), /not valid JSON/);
});

Deno.test("parseCreateFifoRequest() wants one absolute stateDir", () => {
  assert.deepEqual(parseCreateFifoRequest({ stateDir: "/run/x/c1" }), { stateDir: "/run/x/c1" });
  rejects400(() => parseCreateFifoRequest({}), /stateDir is required/);
  rejects400(() => parseCreateFifoRequest({ stateDir: "rel/x" }), /stateDir must be an absolute/);
  rejects400(() => parseCreateFifoRequest({ stateDir: "/a/../etc" }), /stateDir must not contain/);
  rejects400(() => parseCreateFifoRequest({ stateDir: 5 }), /stateDir must be a string/);
  rejects400(
    () => parseCreateFifoRequest({ stateDir: "/x", extra: 1 }),
    /extra is not a known field \(known: stateDir\)/,
  );
  rejects400(() => parseCreateFifoRequest([]), /must be a JSON object/);
  rejects400(() => parseCreateFifoRequest(null), /must be a JSON object/);
  rejects400(() => parseCreateFifoRequest("x"), /must be a JSON object/);
});

Deno.test("parseMonitorRequest() keeps every valid field", () => {
  const full = {
    ...monitor,
    name: "web",
    startTime: 123,
    pStartTime: 0,
    mounts: ["/var/lib/x/rootfs"],
    paths: ["/sys/fs/cgroup/x"],
  };
  assert.deepEqual(parseMonitorRequest(full), full);
  assert.deepEqual(parseMonitorRequest(monitor), monitor);
  assert.equal(parseMonitorRequest({ ...monitor, ppid: 0 }).ppid, 0);
});

Deno.test("parseMonitorRequest() refuses each bad field with its name", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ id: undefined }, /^id is required/],
    [{ id: "a/b" }, /^id must be letters/],
    [{ id: ".." }, /^id must be letters/],
    [{ id: "a..b" }, /^id must not contain "\.\."/],
    [{ id: "a\u0000b" }, /^id must be letters/],
    [{ id: "x".repeat(10_000) }, /^id must be at most 255 characters, got 10000/],
    [{ id: 7 }, /^id must be a string/],
    [{ runtime: "../runc" }, /^runtime must be letters/],
    [{ runtime: undefined }, /^runtime is required/],
    [{ stateDir: "var/run" }, /^stateDir must be an absolute path/],
    [{ pid: 0 }, /^pid must be a positive integer, got 0/],
    [{ pid: -1 }, /^pid must be a positive integer, got -1/],
    [{ pid: 1.5 }, /^pid must be a positive integer, got 1\.5/],
    [{ pid: "100" }, /^pid must be a positive integer, got "100"/],
    [{ pid: 1e20 }, /^pid must be a positive integer/],
    [{ pid: null }, /^pid must be a positive integer, got null/],
    [{ pid: undefined }, /^pid is required/],
    [{ ppid: -5 }, /^ppid must be a positive integer \(or 0 for no shim\), got -5/],
    [{ startTime: -1 }, /^startTime must be a non-negative integer/],
    [{ pStartTime: "1" }, /^pStartTime must be a non-negative integer/],
    [{ name: "" }, /^name must be 1-255 characters/],
    [{ name: "a\nb" }, /^name must not contain control characters/],
    [{ mounts: "/x" }, /^mounts must be an array/],
    [{ mounts: ["rel"] }, /^mounts\[0\] must be an absolute path/],
    [{ paths: ["/ok", "/"] }, /^paths\[1\] must not be the root directory/],
    [{ paths: Array(1025).fill("/x") }, /^paths must have at most 1024 entries/],
    [{ mount: ["/x"] }, /^mount is not a known field \(known: id, runtime/],
  ];
  for (const [patch, re] of cases) {
    rejects400(() => parseMonitorRequest({ ...monitor, ...patch }), re);
  }
});

Deno.test("parseGcAddRequest() takes an optional stateDir and refuses bad pids", () => {
  const req = { id: "c2", runtime: "crun", pid: 5, ppid: 4, stateDir: "/run/s/c2", mounts: [] };
  assert.deepEqual(parseGcAddRequest(req), req);
  assert.deepEqual(parseGcAddRequest({ id: "c", runtime: "r", pid: 1, ppid: 0 }), {
    id: "c",
    runtime: "r",
    pid: 1,
    ppid: 0,
  });
  rejects400(() => parseGcAddRequest({ ...req, pid: 0 }), /^pid must be a positive integer/);
  rejects400(() => parseGcAddRequest({ ...req, name: "x" }), /^name is not a known field/);
  rejects400(() => parseGcAddRequest({ ...req, stateDir: "x" }), /^stateDir must be an absolute/);
});

Deno.test("parseIdSegment() decodes then validates", () => {
  assert.equal(parseIdSegment("web-1"), "web-1");
  assert.equal(parseIdSegment("a%2Eb"), "a.b");
  rejects400(() => parseIdSegment("a%2Fb"), /^container id must be letters/);
  rejects400(() => parseIdSegment("%00"), /^container id must be letters/);
  rejects400(() => parseIdSegment("%zz"), /not valid percent-encoding/);
  rejects400(() => parseIdSegment("%2E%2E"), /^container id must be letters/);
});

Deno.test("parseWaitQuery() takes seconds, fractions allowed, bounded", () => {
  assert.deepEqual(parseWaitQuery(new URLSearchParams("")), { timeoutMs: MAX_WAIT_MS });
  assert.deepEqual(parseWaitQuery(new URLSearchParams("timeout=2")), { timeoutMs: 2000 });
  assert.deepEqual(parseWaitQuery(new URLSearchParams("timeout=0.25")), { timeoutMs: 250 });
  assert.deepEqual(parseWaitQuery(new URLSearchParams("timeout=0")), { timeoutMs: 0 });
  for (const bad of ["-1", "abc", "1e3", "", " 1", "Infinity", "9999999999"]) {
    rejects400(() => parseWaitQuery(new URLSearchParams({ timeout: bad })), /timeout must be/);
  }
  rejects400(() => parseWaitQuery(new URLSearchParams("timeout=1&timeout=2")), /repeated/);
  rejects400(() => parseWaitQuery(new URLSearchParams("t=1")), /unknown query parameter "t"/);
});

Deno.test("parseEventsQuery() reads since, follow and limit", () => {
  assert.deepEqual(parseEventsQuery(new URLSearchParams("")), {
    since: 0,
    follow: false,
    limit: Infinity,
  });
  assert.deepEqual(parseEventsQuery(new URLSearchParams("since=42&follow=1&limit=10")), {
    since: 42,
    follow: true,
    limit: 10,
  });
  assert.equal(parseEventsQuery(new URLSearchParams("follow=false")).follow, false);
  rejects400(() => parseEventsQuery(new URLSearchParams("since=-1")), /since must be an integer/);
  rejects400(() => parseEventsQuery(new URLSearchParams("since=1.5")), /since must be an integer/);
  rejects400(() => parseEventsQuery(new URLSearchParams("limit=0")), /limit must be at least 1/);
  rejects400(() => parseEventsQuery(new URLSearchParams("follow=yes")), /follow must be/);
  rejects400(() => parseEventsQuery(new URLSearchParams("sinc=1")), /unknown query parameter/);
});
