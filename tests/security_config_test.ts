/**
 * The daemon's front doors (issue 5): config files with wrong types make `reaperd serve` exit
 * with one clear line that names the key (and start nothing); the socket is created 0600 in a
 * 0700 dir, and a user other than its owner cannot talk to it even where the dirs let them in.
 */

import assert from "node:assert/strict";
import { TestDaemon } from "./support/daemon.ts";
import { buildConnect, report } from "./support/fault_util.ts";
import { needs } from "./support/needs.ts";

const asRootWithCc = needs("root", "cc");

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A config file's content and the key its error must name. */
interface BadConfig {
  text: string;
  key: string;
}

function bad(value: unknown, key: string): BadConfig {
  return { text: JSON.stringify(value), key };
}

function corpus(dir: string): BadConfig[] {
  const rt = (spec: unknown) => ({ runtimes: { runc: spec } });
  return [
    bad({ socket: 5 }, "socket"),
    bad({ socket: "relative.sock" }, "socket"),
    bad({ socket: `/${"s".repeat(120)}.sock` }, "socket"),
    bad({ db: [] }, "db"),
    bad({ db: "db/../x" }, "db"),
    bad({ stateRoot: null }, "stateRoot"),
    bad({ stateRoot: "var/run" }, "stateRoot"),
    bad({ stateRoot: "/var/run/\u0000x" }, "stateRoot"),
    bad({ runtimes: "runc" }, "runtimes"),
    bad({ runtimes: [] }, "runtimes"),
    bad(rt("/usr/sbin/runc"), "runtimes.runc"),
    bad(rt({}), "runtimes.runc.path"),
    bad(rt({ path: "runc" }), "runtimes.runc.path"),
    bad(rt({ path: 7 }), "runtimes.runc.path"),
    bad(rt({ path: "/usr/sbin/runc", args: "--debug" }), "runtimes.runc.args"),
    bad(rt({ path: "/usr/sbin/runc", args: [1] }), "runtimes.runc.args"),
    bad(rt({ path: "/usr/sbin/runc", root: "yes" }), "runtimes.runc.root"),
    bad(rt({ path: "/usr/sbin/runc", env: {} }), "runtimes.runc.env"),
    bad({ runtimes: { "a/b": { path: "/bin/true" } } }, "runtimes"),
    bad({ gc: 5 }, "gc"),
    bad({ gc: { concurrency: "8" } }, "gc.concurrency"),
    bad({ gc: { concurrency: 0 } }, "gc.concurrency"),
    bad({ gc: { concurrency: -1 } }, "gc.concurrency"),
    bad({ gc: { concurrency: 1.5 } }, "gc.concurrency"),
    bad({ gc: { backoffBaseMs: null } }, "gc.backoffBaseMs"),
    bad({ gc: { backoffMaxMs: 10, backoffBaseMs: 100 } }, "gc.backoffMaxMs"),
    bad({ gc: { stepTimeoutMs: "10s" } }, "gc.stepTimeoutMs"),
    bad({ gc: { retries: 3 } }, "gc.retries"),
    bad({ heldFifoTimeoutMs: "1s" }, "heldFifoTimeoutMs"),
    bad({ eventLogMax: 0 }, "eventLogMax"),
    bad({ stoppedRetentionMs: "1d" }, "stoppedRetentionMs"),
    bad({ stoppedRetentionMs: 1.5 }, "stoppedRetentionMs"),
    // Past the longest delay a timer can hold, a timeout would fire at once.
    bad({ gc: { stepTimeoutMs: 3e9 } }, "gc.stepTimeoutMs"),
    bad({ gc: { backoffBaseMs: 2 ** 31, backoffMaxMs: 2 ** 31 } }, "gc.backoffBaseMs"),
    bad({ heldFifoTimeoutMs: 3e9 }, "heldFifoTimeoutMs"),
    bad({ heldFifoTimeoutMs: Number.MAX_SAFE_INTEGER }, "heldFifoTimeoutMs"),
    bad({ stoppedRetentionMs: 1e300 }, "stoppedRetentionMs"),
    bad({ gc: { concurrency: 1e12 } }, "gc.concurrency"),
    bad(rt({ path: "/usr/sbin/runc", kind: "gvisor" }), "runtimes.runc.kind"),
    bad({ stateDirPattern: "{stateRoot}/{runtime}" }, "stateDirPattern"),
    bad({ logLevel: "loud" }, "logLevel"),
    bad({ logLevel: 3 }, "logLevel"),
    bad({ sockett: "/run/x.sock" }, "sockett"),
    { text: "{", key: "not valid JSON" },
    { text: "", key: "not valid JSON" },
    { text: "[]", key: "must be a JSON object" },
    { text: "null", key: "must be a JSON object" },
    { text: '{"gc": {"concurrency": 4},}', key: "not valid JSON" },
    // A file that is not there at all.
    { text: "\0missing", key: `${dir}/missing.json` },
  ];
}

Deno.test("security: config files with wrong types: serve exits with one line naming the key, starts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reaperd-sec-config-" });
  try {
    const cases = corpus(dir);
    const wrong: string[] = [];
    // A few at a time: each is a fresh process.
    for (let i = 0; i < cases.length; i += 6) {
      await Promise.all(
        cases.slice(i, i + 6).map(async (c, j) => {
          const n = i + j;
          const sub = `${dir}/case${n}`;
          await Deno.mkdir(sub);
          let file = `${sub}/reaperd.json`;
          if (c.text === "\0missing") {
            file = `${dir}/missing.json`;
          } else {
            // Whatever the bad key, every other path stays inside the case's dir.
            let value: unknown;
            try {
              value = JSON.parse(c.text);
            } catch {
              value = undefined;
            }
            const text = value !== null && typeof value === "object" && !Array.isArray(value)
              ? JSON.stringify({
                socket: `${sub}/s.sock`,
                db: `${sub}/r.db`,
                stateRoot: `${sub}/state`,
                ...value,
              })
              : c.text;
            await Deno.writeTextFile(file, text);
          }
          const out = await new Deno.Command(Deno.execPath(), {
            args: ["run", "--allow-all", MAIN, "serve", "--config", file],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).output();
          const stderr = decoder.decode(out.stderr).trim();
          const lines = stderr.split("\n").filter((l) => l.trim() !== "");
          const problems = [];
          if (out.code !== 78) problems.push(`exited ${out.code}, not 78`);
          if (lines.length !== 1) problems.push(`${lines.length} lines on stderr`);
          if (!stderr.includes(c.key)) problems.push(`does not name ${c.key}`);
          const left = [...Deno.readDirSync(sub)].map((e) => e.name).filter((f) =>
            f !== "reaperd.json"
          );
          if (left.length > 0) problems.push(`created ${left.join(", ")}`);
          if (problems.length > 0) {
            wrong.push(`${c.text.slice(0, 60)}: ${problems.join("; ")}: ${stderr}`);
          }
        }),
      );
    }
    assert.deepEqual(wrong, [], wrong.join("\n"));
    report(
      `security config: ${cases.length} bad config files, each refused with one line ` +
        "naming the key",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Tries to talk to `socket` as `uid` (null: as root) through tests/support/fault_connect.c,
 * copied where that user can run it.
 */
async function connectAs(
  uid: number | null,
  socket: string,
): Promise<{ code: number; out: string }> {
  const probe = await buildConnect();
  const dir = await Deno.makeTempDir({ prefix: "reaperd-sec-probe-" });
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.copyFile(probe, `${dir}/probe`);
    await Deno.chmod(`${dir}/probe`, 0o755);
    const argv = uid === null
      ? [`${dir}/probe`, socket]
      : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", `${dir}/probe`, socket];
    const out = await new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, out: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

asRootWithCc.test("security: the socket is 0600, and a non-root user cannot talk to it", async () => {
  const daemon = await TestDaemon.start();
  try {
    const info = await Deno.lstat(daemon.socket);
    assert.ok(info.isSocket);
    assert.equal(info.mode! & 0o777, 0o600, `socket mode ${(info.mode! & 0o777).toString(8)}`);

    // Root gets an answer: the probe itself works.
    const root = await connectAs(null, daemon.socket);
    assert.equal(root.code, 0, root.out);
    assert.match(root.out, /^HTTP\/1\.1 200/);

    // Open the dir, so that only the socket's own mode stands in the way.
    await Deno.chmod(daemon.dir, 0o755);
    const nobody = await connectAs(65534, daemon.socket);
    assert.equal(nobody.code, 1, `nobody talked to the daemon: ${nobody.out}`);
    assert.match(nobody.out, /^connect: Permission denied/);
    // The control: with the socket opened up, the same probe as the same user gets through,
    // so it is the socket's mode, nothing else, that keeps nobody out.
    await Deno.chmod(daemon.socket, 0o666);
    const opened = await connectAs(65534, daemon.socket);
    await Deno.chmod(daemon.socket, 0o600);
    assert.equal(opened.code, 0, opened.out);
    await Deno.chmod(daemon.dir, 0o700);
    assert.equal((await daemon.api("GET", "/v1/health")).status, 200);
    report("security socket: mode 0600; a non-root user (nobody) refused");
  } finally {
    await daemon.dispose();
  }
});

asRootWithCc.test("security: the daemon makes a missing socket dir 0700", async () => {
  const base = await Deno.makeTempDir({ prefix: "reaperd-sec-socket-" });
  const socket = `${base}/run/reaperd/reaperd.sock`;
  await Deno.writeTextFile(
    `${base}/config.json`,
    JSON.stringify({ socket, db: `${base}/r.db`, stateRoot: `${base}/state`, runtimes: {} }),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "serve", "--config", `${base}/config.json`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        if ((await Deno.lstat(socket)).isSocket) break;
      } catch {
        // Not yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal((await Deno.stat(`${base}/run/reaperd`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.lstat(socket)).mode! & 0o777, 0o600);
    const nobody = await connectAs(65534, socket);
    assert.equal(nobody.code, 1, nobody.out);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(base, { recursive: true });
  }
});
