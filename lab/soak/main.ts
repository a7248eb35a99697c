// scripts/soak [--minutes N] [--seed S] [--ci] [--faults-per-kind K] [--rate R] [--keep] [--verbose]
// The churn soak with faults on the lab's kind cluster (lab/soak/run.ts).
// Exit 0 when the summary's must-be-zero figures are zero, 1 otherwise, 2 on bad usage.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { randomSeed } from './rng.ts';
import { runSoak } from './run.ts';

/** The CI subset: every fault kind once, in a few minutes. */
export const CI_MINUTES = 4;
/** Changes per minute: pods, labels, policies and namespaces of a busy cluster (see docs/soak.md). */
export const DEFAULT_RATE = 40;

async function main(): Promise<void> {
  const a = await yargs(hideBin(process.argv))
    .scriptName('scripts/soak')
    .usage(
      "$0 [--minutes N] [--seed S] [--ci]\n\nChurn (pods, namespaces, NetworkPolicies) with faults on the lab's kind cluster, a prober judging every connection against the reference evaluator, and every invariant checked on every node at the end.",
    )
    .option('minutes', { type: 'number', describe: `Minutes of churn (default 10; ${CI_MINUTES} with --ci)` })
    .option('seed', { type: 'number', describe: 'Seed of the scenario and the fault plan (default: random, printed)' })
    .option('ci', { type: 'boolean', default: false, describe: 'The CI subset: every fault kind once' })
    .option('faults-per-kind', {
      type: 'number',
      describe: 'Faults of each kind to inject (default: 6 per hour of run, at least 1; 1 with --ci); the run must inject them all',
    })
    .option('rate', { type: 'number', default: DEFAULT_RATE, describe: 'Changes per minute' })
    .option('keep', { type: 'boolean', default: false, describe: "Leave the soak's namespaces in place at the end" })
    .option('verbose', { type: 'boolean', default: false, describe: 'Print every change' })
    .strict()
    .help()
    .version(false)
    .parseAsync();
  const minutes = a.minutes ?? (a.ci ? CI_MINUTES : 10);
  const perKind = a['faults-per-kind'];
  if (
    !(minutes > 0) ||
    !(a.rate > 0) ||
    (a.seed !== undefined && !Number.isInteger(a.seed)) ||
    (perKind !== undefined && !(Number.isInteger(perKind) && perKind > 0))
  ) {
    process.stderr.write('soak: --minutes and --rate must be positive, --seed an integer, --faults-per-kind a positive integer\n');
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('soak: the lab needs root (network namespaces); try sudo\n');
    process.exit(1);
  }
  const code = await runSoak({
    minutes,
    seed: (a.seed ?? randomSeed()) >>> 0,
    ci: a.ci,
    ...(perKind !== undefined ? { faultsPerKind: perKind } : {}),
    ratePerMin: a.rate,
    keep: a.keep,
    verbose: a.verbose,
  });
  process.exit(code);
}

main().catch((e: unknown) => {
  process.stderr.write(`soak: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
