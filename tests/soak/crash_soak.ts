/**
 * The long kill -9 soak (`deno task soak`): the crash scenario of tests/crash_kill9_test.ts
 * with more containers and many more kills, repeated over several rounds with fresh seeds.
 * Not a `*_test.ts` file, so `deno task test` never runs it.
 *
 *   deno task soak [--containers N] [--kills K] [--rounds R] [--seed S] [--fd-store]
 *
 * Defaults: 600 containers, 200 kills, 3 rounds. Prints the counts of every round and exits
 * non-zero on the first round that broke a promise (with its seed, to replay it).
 *
 * With `--fd-store`, each round runs twice on the same seed under the test service manager:
 * once with an fd store (every exit must then be known), once with a store of size 0, and the
 * unknowns of both are printed side by side.
 *
 * @module
 */

import { checkCrashRun, describeVerdict, runCrashScenario } from "../support/crash_harness.ts";

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(Deno.args[i + 1]);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`--${name} must be a non-negative integer, got ${Deno.args[i + 1]}`);
  }
  return value;
}

const encoder = new TextEncoder();
function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(`${line}\n`));
}

if (import.meta.main) {
  const containers = option("containers", 600);
  const kills = option("kills", 200);
  const rounds = option("rounds", 3);
  const firstSeed = option("seed", Math.floor(Math.random() * 2 ** 31));
  const fdStore = Deno.args.includes("--fd-store");
  // With --fd-store: the store (must lose nothing, know everything), then the same without.
  const modes: (number | undefined)[] = fdStore ? [32_000, 0] : [undefined];
  let failed = false;
  const totals = { kills: 0, known: 0, down: 0, inFlight: 0, containers: 0 };
  for (let round = 0; round < rounds && !failed; round++) {
    const seed = (firstSeed + round) % 2 ** 31;
    const unknowns: string[] = [];
    for (const fdStoreMax of modes) {
      const started = Date.now();
      const run = await runCrashScenario({
        containers,
        kills,
        seed,
        drainTimeoutMs: 180_000,
        ...(fdStoreMax === undefined ? {} : { fdStoreMax }),
        log: (line) =>
          say(`[round ${round + 1} +${Math.round((Date.now() - started) / 1000)}s] ${line}`),
      });
      const verdict = checkCrashRun(run);
      say(`round ${round + 1}/${rounds}: ${describeVerdict(verdict, run)}`);
      if (fdStoreMax !== undefined) {
        unknowns.push(
          `${fdStoreMax > 0 ? "with the fd store" : "without it"}: ${verdict.unknown} unknown ` +
            `of ${verdict.containers} (${verdict.unknownWhileDown} exited while down, ` +
            `${verdict.unknownInFlight} killed between write and record)`,
        );
      }
      totals.kills += verdict.killsSurvived;
      totals.known += verdict.exitsKnown;
      totals.down += verdict.unknownWhileDown;
      totals.inFlight += verdict.unknownInFlight;
      totals.containers += verdict.containers;
      if (verdict.violations.length > 0) {
        failed = true;
        say(`VIOLATIONS (replay with --seed ${seed} --rounds 1):`);
        for (const v of verdict.violations) say(`  ${v}`);
        say("--- daemon logs (tail) ---");
        say(run.daemonLogs.slice(-20_000));
        break;
      }
    }
    if (unknowns.length > 0) say(`round ${round + 1}, seed ${seed}: ${unknowns.join("; ")}`);
  }
  say(
    `soak: ${totals.kills} kills survived, ${totals.containers} containers, ${totals.known} ` +
      `exits known and correct, ${totals.down} unknown (exited while down), ${totals.inFlight} ` +
      `unknown (killed between write and record), ${failed ? "FAILED" : "nothing lost"}`,
  );
  Deno.exit(failed ? 1 : 0);
}
