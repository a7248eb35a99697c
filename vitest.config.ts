import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// One project per tier, selected by folder, run in this order (groupOrder).
// Unit files run in parallel: they touch nothing outside their own temp
// folders. The other tiers share the machine's kernel (netns, sysctls, nft
// state) or one cluster, so their files run one at a time.
const timeouts = { testTimeout: 60_000, hookTimeout: 60_000 };
// The unit tier is `npm test`'s inner loop. Its files share a worker's
// modules (isolate: false): they mock nothing and change no global state, and
// importing the policy compiler and the API client afresh for every file was
// much of the tier's time. One worker per core: vitest's default leaves one
// core to itself, which on a small machine halves the tier's parallelism.
const unit = { isolate: false, maxWorkers: availableParallelism() };
const serial = { fileParallelism: false, globalSetup: ['test/helpers/require-root.ts'], ...timeouts };

/**
 * The e2e files share the lab's kind cluster, each reusing it when it is up;
 * in this order it is created as few times as possible: host-firewall mode
 * needs a lab of its own, and the last two end by taking the lab down.
 */
const E2E_ORDER = ['lab-weirctl', 'lab-policy', 'lab-cnp-dns', 'lab-metadata-guard', 'lab-hostfw', 'lab-resilience', 'lab-basic'];

class TierSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification): number => {
      const i = E2E_ORDER.findIndex((n) => f.moduleId.endsWith(`/${n}.test.ts`));
      return i < 0 ? E2E_ORDER.length : i;
    };
    // Unit files keep vitest's own order, the longest of the last run first:
    // by name, the longest started late and ran on alone after the others.
    const unit = files.filter((f) => f.project.name === 'unit');
    const rest = files.filter((f) => f.project.name !== 'unit');
    return [...(await super.sort(unit)), ...rest.sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId))];
  }
}

export default defineConfig({
  test: {
    sequence: { sequencer: TierSequencer },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], ...unit, ...timeouts, sequence: { groupOrder: 0 } } },
      { test: { name: 'kernel', include: ['test/kernel/**/*.test.ts'], ...serial, sequence: { groupOrder: 1 } } },
      { test: { name: 'runtime', include: ['test/runtime/**/*.test.ts'], ...serial, sequence: { groupOrder: 2 } } },
      { test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], ...serial, sequence: { groupOrder: 3, sequencer: TierSequencer } } },
      { test: { name: 'kind', include: ['test/kind/**/*.test.ts'], ...serial, sequence: { groupOrder: 4 } } },
      // The short fuzz runs (coverage-guided, CPU-bound for about 25 s a
      // target) and the fuzz harness's own tests: apart from the unit tier so
      // that it stays fast, one file at a time so that fuzzers never compete.
      { test: { name: 'fuzz', include: ['test/fuzz/**/*.test.ts'], ...serial, sequence: { groupOrder: 5 } } },
    ],
  },
});
