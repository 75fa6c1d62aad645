import assert from "node:assert/strict";
import { MemoryOutput } from "./output.ts";
import { runCli } from "./program.ts";

async function script(shell: string): Promise<string> {
  const output = new MemoryOutput();
  assert.equal(await runCli(["completion", shell], { output }), 0, output.stderr);
  return output.stdout;
}

function hasShell(name: string): boolean {
  try {
    return new Deno.Command(name, { args: ["-c", "true"] }).outputSync().success;
  } catch {
    return false;
  }
}

/** Runs `lines` in `shell` after loading the script; returns its stdout. */
async function inShell(shell: string, args: string[], lines: string): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/completion`, await script(shell));
    await Deno.writeTextFile(`${dir}/probe`, `source ${dir}/completion\n${lines}`);
    await Deno.writeTextFile(`${dir}/state.json`, "{}");
    const out = await new Deno.Command(shell, { args: [...args, `${dir}/probe`], cwd: dir })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const CASES: [string[], string][] = [
  [["reaperd", "g"], "gc"],
  [["reaperd", "gc", ""], "add ls status retry --help"],
  [["reaperd", "gc", "re"], "retry"],
  [["reaperd", "-s", "/run/x.sock", "ps", "--q"], "--quiet"],
  [["reaperd", "ps", "--filter", "state=s"], "state=stopping state=stopped"],
  [["reaperd", "events", "--filter", "kind=gc"], "kind=gc kind=gc-attempt kind=gc-done"],
  [["reaperd", "completion", ""], "bash zsh"],
  [["reaperd", "serve", "--log-level", "w"], "warning"],
  [["reaperd", "serve", "--config", "sta"], "state.json"],
];

Deno.test("completion bash completes commands, subcommands, flags and their values", async () => {
  const probe = CASES.map(([words]) =>
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; ` +
    `COMPREPLY=(); _reaperd; echo "\${COMPREPLY[*]}"`
  ).join("\n");
  const lines = (await inShell("bash", [], `${probe}\ncomplete -p reaperd`)).trimEnd().split("\n");
  assert.deepEqual(lines, [
    ...CASES.map(([, want]) => want),
    "complete -o default -F _reaperd reaperd",
  ]);
});

Deno.test({
  // Without zsh the report shows it ignored, with the command that would enable it.
  name: "completion zsh offers the same words through compadd and _files" +
    (hasShell("zsh")
      ? ""
      : " (ignored: no zsh on PATH; to run it: as root: apt-get install -y zsh)"),
  ignore: !hasShell("zsh"),
  fn: async () => {
    // Outside a completion widget compadd and _files are plain functions: these print.
    const probe = 'compadd() { shift; print -r -- "$*"; }\n_files() { print state.json; }\n' +
      CASES.map(([words]) =>
        `words=(${words.map((w) => `'${w}'`).join(" ")}); CURRENT=${words.length}; _reaperd`
      ).join("\n");
    const lines = (await inShell("zsh", ["-f"], probe)).trimEnd().split("\n");
    // compadd filters by the typed prefix itself: every candidate comes, the wanted among them.
    CASES.forEach(([words, want], i) => {
      const got = lines[i]!.split(" ");
      for (const w of want.split(" ")) {
        assert.ok(got.includes(w), `${words.join(" ")}: ${lines[i]}`);
      }
    });
  },
});
