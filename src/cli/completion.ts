/**
 * `reaperd completion bash|zsh`: shell completion scripts made from the command tree itself,
 * so that a new command or flag completes without anyone editing a script.
 *
 * @module
 */

/** The parts of a commander command that completion reads. */
export interface CompletableCommand {
  /** The command's name. */
  name(): string;
  /** Its subcommands. */
  readonly commands: readonly CompletableCommand[];
  /** Its flags; `required` or `optional` when the flag takes a value. */
  readonly options: readonly {
    long?: string | undefined;
    short?: string | undefined;
    required: boolean;
    optional: boolean;
  }[];
}

/** Shells there is a script for. */
export const SHELLS = ["bash", "zsh"] as const;
/** A shell there is a script for. */
export type Shell = typeof SHELLS[number];

/**
 * Fixed values a flag takes, keyed `"<command path> <flag>"` ("ps --filter"); a command's
 * first argument is keyed by the path and its last word again ("completion completion").
 */
export type CompletionValues = Record<string, readonly string[]>;

interface Node {
  /** Space-separated command path, "" for the top. */
  path: string;
  /** Subcommand names, then flags. */
  words: string[];
  /** Flags that take a value. */
  valued: string[];
}

function walk(command: CompletableCommand, path: string, out: Node[]): void {
  const flags = command.options.flatMap((o) => [o.long, o.short]).filter((f) => f !== undefined);
  const valued = command.options.filter((o) => o.required || o.optional)
    .flatMap((o) => [o.long, o.short]).filter((f) => f !== undefined);
  const subs = command.commands.map((c) => c.name());
  out.push({ path, words: [...subs, ...flags, "--help"], valued });
  for (const sub of command.commands) {
    walk(sub, path === "" ? sub.name() : `${path} ${sub.name()}`, out);
  }
}

/** `'a'|'b'` for a shell `case` pattern (names hold no quote). */
function alternatives(items: string[]): string {
  return items.map((i) => `'${i}'`).join("|");
}

/**
 * The completion script for `shell`.
 *
 * @param program The program's root command.
 * @param shell bash or zsh.
 * @param values Fixed values of flags and arguments (see {@linkcode CompletionValues}).
 */
export function completionScript(
  program: CompletableCommand,
  shell: Shell,
  values: CompletionValues,
): string {
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9]/g, "_")}`;
  const nodes: Node[] = [];
  walk(program, "", nodes);
  const commandPaths = nodes.map((n) => n.path).filter((p) => p !== "");
  // zsh keeps the command line in $words: the candidates go in $cands in both shells.
  const wordsCase = nodes.map((n) =>
    `    ${n.path === "" ? "''" : `'${n.path}'`}) cands='${n.words.join(" ")}' ;;`
  );
  const valueCase = Object.entries(values).map(([key, list]) =>
    `    '${key}') cands='${list.join(" ")}' ;;`
  );
  const valuedCase = nodes.filter((n) => n.valued.length > 0).map((n) =>
    `    ${n.path === "" ? "''" : `'${n.path}'`}) case "$prev" in ${
      alternatives(n.valued)
    }) valued=1 ;; esac ;;`
  );
  // Both shells run the same walk: find the command path among the words before the cursor,
  // then offer what that command takes. Only the way words come in and go out differs.
  const body = (first: string, last: string, word: (i: string) => string) => `
  local cmd='' w='' prev='' cands='' valued=0 i
  for ((i = ${first}; i < ${last}; i++)); do
    w=${word("i")}
    case "\${cmd:+$cmd }$w" in
      ${alternatives(commandPaths)}) cmd="\${cmd:+$cmd }$w" ;;
    esac
    prev=$w
  done
  case "$cmd" in
${valuedCase.join("\n")}
  esac
  case "$cmd $prev" in
${valueCase.join("\n")}
    *)
      if [ "$valued" = 1 ]; then cands=''; else
        case "$cmd" in
${wordsCase.map((l) => `      ${l}`).join("\n")}
        esac
      fi ;;
  esac`;
  if (shell === "bash") {
    return `# ${name} completion for bash. Load it with:
#   source <(${name} completion bash)
# or for every shell: ${name} completion bash > /etc/bash_completion.d/${name}
${fn}() {${body("1", "COMP_CWORD", (i) => `\${COMP_WORDS[${i}]}`)}
  if [ -z "$cands" ] && [ "$valued" = 1 ]; then
    COMPREPLY=($(compgen -f -- "\${COMP_WORDS[COMP_CWORD]}"))
  else
    COMPREPLY=($(compgen -W "$cands" -- "\${COMP_WORDS[COMP_CWORD]}"))
  fi
}
# -o default: file names where it offers nothing (create-fifo's state dir, --mount paths…).
complete -o default -F ${fn} ${name}
`;
  }
  return `#compdef ${name}
# ${name} completion for zsh. Load it with:
#   source <(${name} completion zsh)
# or put it on $fpath as _${name} (after compinit).
${fn}() {${body("2", "CURRENT", (i) => `\${words[${i}]}`)}
  if [ -z "$cands" ] && [ "$valued" = 1 ]; then
    _files
  else
    compadd -- \${=cands}
  fi
}
if (( $+functions[compdef] )); then compdef ${fn} ${name}; fi
`;
}
