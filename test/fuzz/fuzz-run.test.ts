// The short fuzz of CI: each target (fuzz/*.fuzz.ts) runs a fixed number of
// executions with a fixed seed from its corpus (scripts/fuzz), under nice,
// capped in time so that a loaded machine runs fewer rather than time out.
// Passes when the fuzzer found no crash, ran at least a floor of executions,
// and reached at least a floor of coverage: a fuzzer whose instrumentation
// broke would run blind and find nothing, which must not pass for a clean run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Executions per target (about 15-25 s each on an idle machine), the fewest
 * that count as a run, and the coverage its corpus alone reaches, rounded down.
 */
const TARGETS = [
  { target: 'cni-stdin', runs: 60_000, minRuns: 10_000, minEdges: 500 },
  { target: 'cni-env', runs: 60_000, minRuns: 10_000, minEdges: 400 },
  { target: 'agent-api', runs: 15_000, minRuns: 3_000, minEdges: 150 },
];
/** Per target: the whole short fuzz stays under two minutes. */
const MAX_SECONDS = 25;

describe('short fuzz', () => {
  it.each(TARGETS)(
    '$target: $runs executions, no crash, coverage at least $minEdges edges',
    ({ target, runs, minRuns, minEdges }) => {
      const args = ['-n', '19', 'scripts/fuzz', '--target', target, '--runs', String(runs), '--seconds', String(MAX_SECONDS), '--seed', '1'];
      const r = spawnSync('nice', args, { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
      const out = `${r.stdout}${r.stderr}`;
      expect(r.error, out).toBeUndefined();
      const line = new RegExp(`^${target}: (\\d+) executions .*coverage (\\d+) edges.* (\\d+) crashes$`, 'm').exec(r.stdout);
      expect(line, out).not.toBeNull();
      const [, executions, edges, crashes] = line!.map(Number) as [number, number, number, number];
      expect(crashes, out).toBe(0);
      expect(r.status, out).toBe(0);
      expect(executions, out).toBeGreaterThanOrEqual(minRuns);
      expect(executions).toBeLessThanOrEqual(runs);
      expect(edges, out).toBeGreaterThanOrEqual(minEdges);
    },
    120_000,
  );
});
