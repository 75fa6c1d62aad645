/**
 * Bad input on the socket API (issue 5): a corpus of malformed, mistyped, oversized and hostile
 * requests, sent raw over the unix socket to the real daemon. Every one must get a 4xx, the
 * daemon must answer the next request, and nothing may be written: no record, no GC entry, no
 * event, no directory or FIFO.
 */

import assert from "node:assert/strict";
import type { Health } from "../src/daemon/api.ts";
import { readProcStat } from "../src/sys/proc.ts";
import { stopShim } from "./fixtures/shim.ts";
import { TestDaemon } from "./support/daemon.ts";
import {
  allEvents,
  crashRuntime,
  getJson,
  report,
  startContainer,
  type TestContainer,
} from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const withCc = needs("cc");

const RT = "crt";
const encoder = new TextEncoder();

/** One bad request: what it is, and its raw parts. */
interface BadRequest {
  what: string;
  method: string;
  path: string;
  /** The body; a string is sent as UTF-8. */
  body?: string | Uint8Array;
  /** Extra raw header lines. */
  headers?: string[];
  /** Send no Content-Length (and no body). */
  noLength?: boolean;
}

/** Sends one request as raw bytes over the socket; returns the status (null: no answer). */
async function raw(
  socket: string,
  req: BadRequest,
): Promise<{ status: number | null; text: string }> {
  const body = typeof req.body === "string"
    ? encoder.encode(req.body)
    : req.body ?? new Uint8Array();
  const head = [
    `${req.method} ${req.path} HTTP/1.1`,
    "Host: reaperd",
    "Connection: close",
    ...(req.noLength ? [] : [`Content-Length: ${body.length}`]),
    ...(req.headers ?? []),
    "",
    "",
  ].join("\r\n");
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    const bytes = new Uint8Array([...encoder.encode(head), ...body]);
    try {
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    } catch {
      // The daemon may answer (413) and hang up before reading it all; read what it said.
    }
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 10_000);
    try {
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
      }
    } finally {
      clearTimeout(deadline);
    }
    const text = new TextDecoder().decode(
      chunks.reduce((a, c) => new Uint8Array([...a, ...c]), new Uint8Array()),
    );
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    return { status: m ? Number(m[1]) : null, text };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the deadline.
    }
  }
}

function json(what: string, method: string, path: string, value: unknown): BadRequest {
  return { what, method, path, body: JSON.stringify(value) };
}

/** The corpus, given a valid monitor request to spoil field by field. */
function corpus(valid: Record<string, unknown>, stateRoot: string): BadRequest[] {
  const out: BadRequest[] = [];
  const monitor = (what: string, patch: Record<string, unknown>) =>
    out.push(json(`monitor: ${what}`, "POST", "/v1/containers", { ...valid, ...patch }));
  const gc = (what: string, patch: Record<string, unknown>) =>
    out.push(json(`gc add: ${what}`, "POST", "/v1/gc", { ...valid, ...patch }));
  const without = (key: string) => {
    const copy = { ...valid };
    delete copy[key];
    return copy;
  };

  // Malformed JSON and non-objects.
  for (
    const body of [
      "",
      "{",
      "}",
      '{"id":',
      "{'id': 'x'}",
      '{"id": "a",}',
      '{"pid": NaN}',
      "[]",
      "null",
      "42",
      '"text"',
      "true",
      "\u0000",
      '{"id": "a"} {"id": "b"}',
      "{".repeat(5000) + "}".repeat(5000),
    ]
  ) {
    out.push({
      what: `malformed JSON ${JSON.stringify(body.slice(0, 20))}`,
      method: "POST",
      path: "/v1/containers",
      body,
    });
    out.push({
      what: `malformed JSON (gc) ${JSON.stringify(body.slice(0, 20))}`,
      method: "POST",
      path: "/v1/gc",
      body,
    });
  }
  out.push({
    what: "body that is not UTF-8",
    method: "POST",
    path: "/v1/containers",
    body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
  });
  out.push({
    what: "POST with no body at all",
    method: "POST",
    path: "/v1/containers",
    noLength: true,
  });

  // Missing and unknown fields.
  for (const key of ["id", "runtime", "stateDir", "pid", "ppid"]) {
    out.push(json(`monitor without ${key}`, "POST", "/v1/containers", without(key)));
  }
  monitor("unknown field", { mount: ["/x"] });
  monitor("__proto__ field", JSON.parse('{"__proto__": {"admin": true}}'));

  // Wrong types, field by field.
  for (const id of [1, null, [], {}, true]) monitor(`id of type ${JSON.stringify(id)}`, { id });
  for (const runtime of [5, null, ["crt"], ""]) {
    monitor(`runtime ${JSON.stringify(runtime)}`, { runtime });
  }
  for (
    const stateDir of [
      7,
      null,
      "",
      "relative/dir",
      "./x",
      `${stateRoot}/../etc`,
      "/",
      "/etc",
      `${stateRoot}/${RT}/a\u0000b`,
    ]
  ) {
    monitor(`stateDir ${JSON.stringify(stateDir)}`, { stateDir });
  }
  monitor("stateDir of 5,000 bytes", { stateDir: `${stateRoot}/${"d".repeat(5000)}` });
  for (const pid of ["1", 1.5, -1, 0, -2147483648, 2 ** 53, 1e308, true, null, [], {}]) {
    monitor(`pid ${JSON.stringify(pid)}`, { pid });
    gc(`pid ${JSON.stringify(pid)}`, { pid });
  }
  for (const ppid of [-1, -5, "0", 1.5, null]) monitor(`ppid ${JSON.stringify(ppid)}`, { ppid });
  for (const startTime of [-1, "1", 1.5, null, 2 ** 64]) {
    monitor(`startTime ${JSON.stringify(startTime)}`, { startTime });
    monitor(`pStartTime ${JSON.stringify(startTime)}`, { pStartTime: startTime });
  }
  for (
    const mounts of [
      "x",
      [1],
      ["relative"],
      ["/"],
      ["//"],
      ["/a/../b"],
      [null],
      Array(2000).fill("/m"),
    ]
  ) {
    monitor(`mounts ${JSON.stringify(mounts).slice(0, 30)}`, { mounts });
  }
  for (const paths of ["x", [2], ["rel/path"], ["/"], ["/a/./b"]]) {
    monitor(`paths ${JSON.stringify(paths)}`, { paths });
  }
  for (const name of ["", "a\nb", "n".repeat(300), 5]) {
    monitor(`name ${JSON.stringify(name).slice(0, 20)}`, { name });
  }

  // Hostile ids, in the body and in the path.
  const ids = [
    "a/b",
    "..",
    "../etc",
    ".",
    "-rf",
    "a\u0000b",
    "x".repeat(10_000),
    "",
    " ",
    "é",
    "a b",
    "a\nb",
    "/abs",
  ];
  for (const id of ids) {
    monitor(`id ${JSON.stringify(id).slice(0, 20)}`, { id });
    gc(`id ${JSON.stringify(id).slice(0, 20)}`, { id });
  }
  for (
    const segment of ["a%2Fb", "..", "%2E%2E", "a%00b", "%ZZ", "x".repeat(10_000), "-rf", "%20"]
  ) {
    out.push({
      what: `inspect /${segment.slice(0, 20)}`,
      method: "GET",
      path: `/v1/containers/${segment}`,
    });
    out.push({
      what: `gc status /${segment.slice(0, 20)}`,
      method: "GET",
      path: `/v1/gc/${segment}`,
    });
    out.push({
      what: `wait /${segment.slice(0, 20)}`,
      method: "GET",
      path: `/v1/containers/${segment}/wait?timeout=0`,
    });
  }

  // Runtimes that are not configured.
  for (const runtime of ["nope", "crt2", "CRT", "crt/../x", "kata-nope"]) {
    monitor(`runtime ${runtime}`, { runtime });
    gc(`runtime ${runtime}`, { runtime });
  }

  // Oversized bodies (the limit is 64 KiB), honest and lying.
  out.push(
    json("body just over 64 KiB", "POST", "/v1/containers", { ...valid, name: "n".repeat(66_000) }),
  );
  out.push({
    what: "body of 8 MiB",
    method: "POST",
    path: "/v1/containers",
    body: "x".repeat(8 << 20),
  });
  out.push({
    what: "Content-Length of a terabyte",
    method: "POST",
    path: "/v1/gc",
    noLength: true,
    headers: ["Content-Length: 1099511627776"],
  });

  // Create-fifo with paths that must not be created.
  for (
    const stateDir of [
      "relative",
      `${stateRoot}/../outside`,
      "/",
      "/etc/reaperd-must-not-exist",
      `${stateRoot}/a\u0000b`,
      3,
    ]
  ) {
    out.push(json(`create-fifo ${JSON.stringify(stateDir)}`, "POST", "/v1/fifos", { stateDir }));
  }
  out.push(
    json("create-fifo unknown field", "POST", "/v1/fifos", {
      stateDir: `${stateRoot}/${RT}/x`,
      mode: 511,
    }),
  );

  // Queries, methods and routes.
  for (
    const q of [
      "since=-1",
      "since=abc",
      "limit=0",
      "limit=-3",
      "follow=maybe",
      "bogus=1",
      "since=1&since=2",
    ]
  ) {
    out.push({ what: `events ?${q}`, method: "GET", path: `/v1/events?${q}` });
  }
  for (const q of ["timeout=-1", "timeout=1e99", "timeout=abc", "x=1"]) {
    out.push({ what: `wait ?${q}`, method: "GET", path: `/v1/containers/ok1/wait?${q}` });
  }
  out.push({ what: "query on health", method: "GET", path: "/v1/health?verbose=1" });
  for (
    const [method, path] of [
      ["DELETE", "/v1/containers"],
      ["PUT", "/v1/gc"],
      ["PATCH", "/v1/fifos"],
      ["POST", "/v1/health"],
      ["GET", "/v1/fifos"],
      ["GET", "/v2/containers"],
      ["GET", "/"],
      ["GET", "/v1/containers/a/b/c"],
    ]
  ) {
    out.push({ what: `${method} ${path}`, method: method!, path: path! });
  }
  return out;
}

withCc.test("security: a corpus of bad API requests gets 4xx each, the daemon answers on, and nothing is written", async () => {
  const log = await Deno.makeTempFile({ prefix: "reaperd-sec-api-", suffix: ".log" });
  const daemon = await TestDaemon.start({ runtimes: crashRuntime(RT, log) });
  let alive: TestContainer | undefined;
  let sleeper: Deno.ChildProcess | undefined;
  try {
    // A real, held FIFO in a valid state dir, so that requests fail for their own fault only.
    const stateDir = `${daemon.stateRoot}/${RT}/ok1`;
    const held = await daemon.api("POST", "/v1/fifos", { stateDir });
    assert.equal(held.status, 200);
    // The "container" of the valid request is a process of its own: were a spoiled request
    // taken anyway, cleanup could kill it, and it must not be the test.
    sleeper = new Deno.Command("sleep", { args: ["600"], stdin: "null" }).spawn();
    const start = readProcStat(sleeper.pid)!.startTime;
    const valid = { id: "ok1", runtime: RT, stateDir, pid: sleeper.pid, ppid: 0, startTime: start };
    const requests = corpus(valid, daemon.stateRoot);
    // pid 1 (init) named with a start time that is not init's: another process's identity.
    const init = readProcStat(1)!;
    requests.push(json("monitor: pid 1 with a wrong start time", "POST", "/v1/containers", {
      ...valid,
      pid: 1,
      startTime: init.startTime + 12_345,
    }));
    requests.push(json("gc add: pid 1 with a wrong start time", "POST", "/v1/gc", {
      ...valid,
      pid: 1,
      startTime: init.startTime + 12_345,
    }));
    requests.push(json("monitor: a live pid with a wrong start time", "POST", "/v1/containers", {
      ...valid,
      startTime: start + 1,
    }));
    requests.push(json("monitor: a live ppid with a wrong start time", "POST", "/v1/containers", {
      ...valid,
      ppid: sleeper.pid,
      pStartTime: start + 1,
    }));
    requests.push(json("monitor: ppid 1 with a wrong start time", "POST", "/v1/containers", {
      ...valid,
      ppid: 1,
      pStartTime: init.startTime + 12_345,
    }));

    const eventsBefore = (await allEvents(daemon)).length;
    const listing = () => [...Deno.readDirSync(daemon.dir)].map((e) => e.name).sort().join(",");
    const dirBefore = listing();
    const stateBefore = [...Deno.readDirSync(`${daemon.stateRoot}/${RT}`)].map((e) => e.name);
    const wrong: string[] = [];
    for (const req of requests) {
      const res = await raw(daemon.socket, req);
      if (res.status === null || res.status < 400 || res.status > 499) {
        wrong.push(`${req.what}: ${res.status} ${res.text.split("\r\n\r\n")[1]?.slice(0, 200)}`);
      }
      const health = await daemon.api("GET", "/v1/health");
      if (health.status !== 200) wrong.push(`after ${req.what}: health answered ${health.status}`);
    }
    assert.deepEqual(wrong, [], `requests not refused with a 4xx:\n${wrong.join("\n")}`);

    // Nothing was written.
    assert.equal((await allEvents(daemon)).length, eventsBefore, "no event");
    assert.deepEqual(await getJson(daemon, "/v1/containers"), [], "no record");
    assert.deepEqual(await getJson(daemon, "/v1/gc"), [], "no GC entry");
    assert.equal(listing(), dirBefore, "nothing new in the daemon's dir");
    assert.deepEqual(
      [...Deno.readDirSync(`${daemon.stateRoot}/${RT}`)].map((e) => e.name),
      stateBefore,
    );
    await assert.rejects(Deno.stat("/etc/reaperd-must-not-exist"), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${daemon.dir}/outside`), Deno.errors.NotFound);

    // …and the daemon still does its job.
    alive = await startContainer(daemon, { id: "after", runtime: RT });
    await alive.exit(3);
    const health = await getJson<Health>(daemon, "/v1/health");
    assert.equal(health.status, "ok");
    assert.notEqual(readProcStat(sleeper.pid)?.state, "Z", "no refused request reached a process");
    report(
      `security api: ${requests.length} bad requests, ${requests.length} refused with 4xx, ` +
        "0 written",
    );
  } finally {
    await stopShim(alive?.shim);
    if (sleeper !== undefined) {
      try {
        sleeper.kill("SIGKILL");
      } catch {
        // Already ended (which the test reports).
      }
      await sleeper.status;
    }
    await daemon.dispose();
    await Deno.remove(log);
  }
});
