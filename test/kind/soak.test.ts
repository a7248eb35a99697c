// The kind tier's soak: a short run of scripts/soak (--ci: a few minutes of
// churn, every fault kind injected at least once) on the lab's kind
// cluster, judged by what its summary says: no connection the reference
// evaluator forbids got through, no invariant broken on any node.
//
// Like kind.test.ts it takes the lab as it finds it (scripts/lab up reuses a
// running 3-node lab, and creates one otherwise) and takes it down at the
// end, so the two files compose in either order. Needs root.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kindPaths } from '../../lab/kind.ts';
import { FAULT_KINDS } from '../../lab/soak/schedule.ts';
import { parseSummaryLine } from '../../lab/soak/summary.ts';
import { DOWN_TIMEOUT_MS, lab, script, UP_TIMEOUT_MS, upDefaultLab } from '../helpers/lab.ts';

/** The soak's churn minutes plus its setup, its faults' overrun, the settling and the invariant passes. */
const SOAK_TIMEOUT_MS = 25 * 60_000;

/** scripts/soak, its output echoed as it comes and kept. */
const soak = (args: string[]) => script('scripts/soak', args, SOAK_TIMEOUT_MS);

describe('kind: a short churn soak with faults', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the kind tier needs root (the cluster lives in a network namespace)');
    await upDefaultLab();
  }, UP_TIMEOUT_MS + DOWN_TIMEOUT_MS);

  afterAll(async () => {
    if (fs.existsSync(`/run/netns/${kindPaths().netns}`)) await lab(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
  }, DOWN_TIMEOUT_MS + 10_000);

  it(
    'scripts/soak --ci: every fault kind injected, 0 forbidden connections, 0 invariant violations',
    async () => {
      const r = await soak(['--ci']);
      const summary = parseSummaryLine(r.out) as
        | {
            ok: boolean;
            seed: number;
            events: number;
            faults: Record<string, number>;
            forbidden: number;
            violations: number;
            probes: number;
            enforceP50Ms: number | null;
            enforceP99Ms: number | null;
          }
        | undefined;
      expect(summary, 'no SOAK_SUMMARY line: the soak did not finish').toBeDefined();
      if (!summary) return;
      const seed = `seed ${summary.seed} (replay: scripts/soak --ci --seed ${summary.seed})`;
      expect(summary.forbidden, seed).toBe(0);
      expect(summary.violations, seed).toBe(0);
      for (const k of FAULT_KINDS) expect(summary.faults[k], `${k}, ${seed}`).toBeGreaterThanOrEqual(1);
      expect(summary.events).toBeGreaterThan(50);
      expect(summary.probes).toBeGreaterThan(1000);
      expect(summary.ok, seed).toBe(true);
      expect(r.code).toBe(0);
      console.log(
        `scripts/soak --ci: ${summary.events} changes, ${summary.probes} probes, change → enforced p50 ${summary.enforceP50Ms} ms, p99 ${summary.enforceP99Ms} ms, in ${(r.ms / 60_000).toFixed(1)} min; ${seed}`,
      );
    },
    SOAK_TIMEOUT_MS + 60_000,
  );
});
