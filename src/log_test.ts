import assert from "node:assert/strict";
import {
  configureLogging,
  escapeControl,
  getLogger,
  renderPropertyValue,
  resetLogging,
} from "./log.ts";

function capture(journal: boolean, level: "debug" | "info" = "debug"): string[] {
  const lines: string[] = [];
  configureLogging({ level, journal, write: (line) => lines.push(line) });
  return lines;
}

Deno.test("configureLogging() writes one journal-prefixed line per record", () => {
  const lines = capture(true);
  try {
    const log = getLogger("gc");
    log.error("cleanup of {id} failed", { id: "web-1", step: "runtime-delete" });
    log.warning("slow");
    log.info("up");
    log.debug("detail");
    assert.deepEqual(lines, [
      "<3>gc: cleanup of web-1 failed id=web-1 step=runtime-delete\n",
      "<4>gc: slow\n",
      "<6>gc: up\n",
      "<7>gc: detail\n",
    ]);
  } finally {
    resetLogging();
  }
});

Deno.test("formatRecord() skips properties the message shows, except grep keys", () => {
  const lines = capture(true);
  try {
    getLogger("d").info("ready on {socket} for {id}", { socket: "/s", id: "c1", extra: 1 });
    assert.deepEqual(lines, ["<6>d: ready on /s for c1 id=c1 extra=1\n"]);
  } finally {
    resetLogging();
  }
});

Deno.test("configureLogging() filters below the configured level", () => {
  const lines = capture(true, "info");
  try {
    getLogger("x").debug("hidden");
    getLogger(["x", "y"]).info("shown");
    assert.deepEqual(lines, ["<6>x.y: shown\n"]);
  } finally {
    resetLogging();
  }
});

Deno.test("configureLogging() without the journal starts lines with time and level", () => {
  const lines = capture(false);
  try {
    getLogger("http").warning("bad request", { status: 400 });
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING http: bad request status=400\n$/,
    );
  } finally {
    resetLogging();
  }
});

Deno.test("log lines never contain a raw newline, whatever the message or properties", () => {
  const lines = capture(true);
  try {
    getLogger("s").error("line one\nline two", {
      err: new Error("boom\nstack"),
      tail: "a b\r\nc",
      obj: { k: "v" },
    });
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.indexOf("\n"), line.length - 1);
    assert.equal(
      line,
      '<3>s: line one\\nline two err="boom\\nstack" tail="a b\\r\\nc" obj="{\\"k\\":\\"v\\"}"\n',
    );
  } finally {
    resetLogging();
  }
});

Deno.test("renderPropertyValue() keeps plain words bare and quotes the rest", () => {
  assert.equal(renderPropertyValue("web-1"), "web-1");
  assert.equal(renderPropertyValue(42), "42");
  assert.equal(renderPropertyValue(true), "true");
  assert.equal(renderPropertyValue(null), "null");
  assert.equal(renderPropertyValue("two words"), '"two words"');
  assert.equal(renderPropertyValue("a=b"), '"a=b"');
  assert.equal(renderPropertyValue(""), '""');
  assert.equal(renderPropertyValue(10n), "10");
});

Deno.test("escapeControl() escapes every C0 control and DEL", () => {
  assert.equal(escapeControl("a\tb\u001b[31m\u007f"), "a\\tb\\x1b[31m\\x7f");
});

Deno.test("stderrIsJournal() is true only when JOURNAL_STREAM matches fd 2", async () => {
  const probe = `import { stderrIsJournal } from ${JSON.stringify(import.meta.resolve("./log.ts"))};
    Deno.stdout.writeSync(new TextEncoder().encode(String(stderrIsJournal())));`;
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", probe],
      cwd: new URL("../", import.meta.url),
      env,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout);
  };
  // The child's stderr is /dev/null: find its dev:ino and pretend it is the journal.
  const devNull = await Deno.stat("/dev/null");
  assert.equal(await run({ JOURNAL_STREAM: `${devNull.dev}:${devNull.ino}` }), "true");
  assert.equal(await run({ JOURNAL_STREAM: "1:2" }), "false");
  assert.equal(await run({ JOURNAL_STREAM: "" }), "false");
});
