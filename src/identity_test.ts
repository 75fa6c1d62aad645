import assert from "node:assert/strict";
import {
  absolutePathProblem,
  idProblem,
  isKnownProcess,
  runtimeNameProblem,
  StateLayout,
  statePatternProblem,
} from "./identity.ts";

Deno.test("idProblem() accepts container ids and rejects what could escape a path or not fit one", () => {
  for (const ok of ["a", "web-1", "A.b_c-9", "0".repeat(255), "3f2a9c"]) {
    assert.equal(idProblem(ok), null, ok);
  }
  const bad: unknown[] = [
    "",
    "a/b",
    "..",
    "a..b",
    ".hidden",
    "-rf",
    "a\u0000b",
    "a\nb",
    "tab\tid",
    "x".repeat(256),
    "x".repeat(10_000),
    "é",
    " a",
    5,
    null,
    undefined,
    {},
  ];
  for (const value of bad) {
    const problem = idProblem(value);
    assert.notEqual(problem, null, JSON.stringify(value));
    assert.ok(problem!.length < 200, problem!);
  }
  assert.match(idProblem("x".repeat(256))!, /at most 255 characters/);
  assert.equal(runtimeNameProblem("runc"), null);
  assert.match(runtimeNameProblem("r".repeat(65))!, /at most 64/);
});

Deno.test("absolutePathProblem() rejects relative, NUL, control chars, dot components, huge", () => {
  assert.equal(absolutePathProblem("/var/run/isulad/runc/c1"), null);
  assert.equal(absolutePathProblem("/a/.b/c.d"), null);
  for (const bad of ["rel/x", "./x", "", "/a/../b", "/a/./b", "/a\u0000", "/a\u001b[31m", 7]) {
    assert.notEqual(absolutePathProblem(bad), null, JSON.stringify(bad));
  }
  assert.match(absolutePathProblem(`/${"a/".repeat(2500)}`) ?? "", /at most 4095 bytes/);
  assert.match(absolutePathProblem(`/x/${"a".repeat(256)}`) ?? "", /longer than 255 bytes/);
  assert.equal(absolutePathProblem(`/x/${"a".repeat(255)}`), null);
  // Limits count UTF-8 bytes, not characters: 128 "é" are 256 bytes, 127 are 254.
  assert.match(absolutePathProblem(`/x/${"é".repeat(128)}`) ?? "", /longer than 255 bytes/);
  assert.equal(absolutePathProblem(`/x/${"é".repeat(127)}`), null);
  assert.match(absolutePathProblem(`/${"é/".repeat(1400)}`) ?? "", /at most 4095 bytes, got 4201/);
  assert.equal(absolutePathProblem(`/${"é/".repeat(1364)}`), null);
});

Deno.test("StateLayout: a state dir is exactly <stateRoot>/<runtime>/<id>, never a parent", () => {
  const layout = new StateLayout("/var/run/isulad/");
  assert.equal(layout.dirOf("runc", "c1"), "/var/run/isulad/runc/c1");
  assert.equal(layout.problem("/var/run/isulad/runc/c1", "runc", "c1"), null);
  assert.equal(layout.problem("/var/run/isulad/runc/c1/", "runc", "c1"), null);
  for (
    const bad of [
      "/var/run/isulad/runc",
      "/var/run/isulad",
      "/var/run/isulad/runc/c2",
      "/var/run/isulad/crun/c1",
      "/var/run/isulad/runc/c1/x",
      "/var/run/isulad//runc/c1",
      "/elsewhere/runc/c1",
    ]
  ) {
    assert.match(layout.problem(bad, "runc", "c1") ?? "", /must be \/var\/run\/isulad\/runc\/c1/);
  }
  assert.deepEqual(layout.parse("/var/run/isulad/runc/c1/"), { runtime: "runc", id: "c1" });
  for (
    const bad of [
      "/var/run/isulad/runc",
      "/var/run/isulad",
      "/var/run/isulad/runc/c1/x",
      "/var/run/isulad/runc/-x",
      "/other/runc/c1",
    ]
  ) {
    assert.equal(typeof layout.parse(bad), "string", bad);
  }
});

Deno.test("StateLayout: a dir whose FIFO path would pass PATH_MAX cannot exist", () => {
  const root = `/${"r".repeat(200)}/`.repeat(20).replace(/\/+$/, "");
  const layout = new StateLayout(root);
  const id = "i".repeat(200);
  assert.match(layout.problem(layout.dirOf("runc", id), "runc", id) ?? "", /too long/);
  assert.match(layout.parse(layout.dirOf("runc", id)) as string, /too long/);
  assert.equal(layout.problem(layout.dirOf("runc", "c1"), "runc", "c1"), null);
});

Deno.test("StateLayout: other layouts keep {id} a whole component and every dir the same depth", () => {
  const layout = new StateLayout("/run/engine", "{stateRoot}/containers/{id}");
  assert.equal(layout.dirOf("runc", "c1"), "/run/engine/containers/c1");
  assert.deepEqual(layout.parse("/run/engine/containers/c1"), { runtime: "", id: "c1" });
  assert.notEqual(layout.parse("/run/engine/other/c1"), null);
  for (
    const bad of [
      "/abs/{id}",
      "{stateRoot}",
      "{stateRoot}/{runtime}",
      "{stateRoot}/{id}/{id}",
      "{stateRoot}/x{id}",
      "{stateRoot}/{runtime}/{id}/../x",
      "{stateRoot}/{ID}/{id}",
      7,
    ]
  ) {
    assert.notEqual(statePatternProblem(bad), null, JSON.stringify(bad));
  }
  assert.throws(() => new StateLayout("/r", "{stateRoot}"), TypeError);
});

Deno.test("isKnownProcess(): a start time of 0 or a pid <= 0 names nobody", () => {
  assert.ok(isKnownProcess({ pid: 42, startTime: 777 }));
  assert.ok(!isKnownProcess({ pid: 42, startTime: 0 }));
  assert.ok(!isKnownProcess({ pid: 0, startTime: 777 }));
  assert.ok(!isKnownProcess({ pid: -1, startTime: 777 }));
});
