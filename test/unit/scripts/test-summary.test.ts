// scripts/test's closing line (scripts/test-summary.mjs), fed crafted vitest
// JSON reports in the shape vitest 4 writes them.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../../..');
const SCRIPT = path.join(REPO, 'scripts/test-summary.mjs');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-test-summary-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Status = 'passed' | 'failed' | 'skipped' | 'pending';
interface File {
  name: string;
  status: 'passed' | 'failed';
  message?: string;
  tests: Status[];
}

/** A report as vitest's JSON reporter writes it for these files. */
function report(files: File[], extra: Record<string, unknown> = {}): unknown {
  const all = files.flatMap((f) => f.tests);
  return {
    numTotalTestSuites: files.length,
    numPassedTestSuites: files.filter((f) => f.status === 'passed').length,
    numFailedTestSuites: files.filter((f) => f.status === 'failed').length,
    numPendingTestSuites: 0,
    numTotalTests: all.length,
    numPassedTests: all.filter((s) => s === 'passed').length,
    numFailedTests: all.filter((s) => s === 'failed').length,
    numPendingTests: all.filter((s) => s === 'skipped' || s === 'pending').length,
    numTodoTests: 0,
    snapshot: { added: 0, failure: false, total: 0 },
    startTime: 1796618364223,
    success: files.every((f) => f.status === 'passed'),
    testResults: files.map((f) => ({
      name: path.join(REPO, f.name),
      status: f.status,
      message: f.message ?? '',
      startTime: 1796618364300,
      endTime: 1796618364400,
      assertionResults: f.tests.map((status, i) => ({
        ancestorTitles: [],
        fullName: `t${i}`,
        title: `t${i}`,
        status,
        duration: 1,
        failureMessages: status === 'failed' ? ['AssertionError'] : [],
        meta: {},
      })),
    })),
    ...extra,
  };
}

let n = 0;
/** Runs the script as scripts/test does; returns its one stdout line, its stderr and its status. */
function summary(body: unknown | string | undefined, rc: number): { line: string; stderr: string; status: number | null } {
  const file = path.join(dir, `report-${n++}.json`);
  if (body !== undefined) fs.writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
  const r = spawnSync(process.execPath, [SCRIPT, file, String(rc)], { cwd: REPO, encoding: 'utf8' });
  const lines = r.stdout.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  return { line: lines[0] as string, stderr: r.stderr, status: r.status };
}

const ok = (name: string, tests: Status[] = ['passed', 'passed']): File => ({ name, status: 'passed', tests });

describe('scripts/test-summary.mjs', () => {
  it('a clean run: the passed tests, 0 failed, nothing on stderr', () => {
    const r = summary(report([ok('test/unit/a.test.ts', ['passed', 'passed', 'skipped']), ok('test/unit/b.test.ts')]), 0);
    expect(r).toEqual({ line: '4 passed, 0 failed', stderr: '', status: 0 });
  });

  it('failed tests count one each; their files are not named again', () => {
    const r = summary(report([ok('test/unit/a.test.ts'), { name: 'test/unit/b.test.ts', status: 'failed', tests: ['failed', 'passed', 'failed'] }]), 1);
    expect(r.line).toBe('3 passed, 2 failed');
    expect(r.stderr).toBe('');
  });

  it('a file that failed in its setup (no test ran) counts as failed and is named with its error', () => {
    // The run that printed "1427 passed, 0 failed" and exited 1.
    const r = summary(
      report([ok('test/unit/a.test.ts'), { name: 'test/e2e/lab.test.ts', status: 'failed', message: 'Error: scripts/lab up failed\n    at setup', tests: [] }]),
      1,
    );
    expect(r.line).toBe('2 passed, 1 failed');
    expect(r.stderr).toBe('test: test/e2e/lab.test.ts failed outside any test: Error: scripts/lab up failed\n');
  });

  it('a file whose hook failed (its tests skipped) counts as failed, one per file, beside failed tests elsewhere', () => {
    const r = summary(
      report([
        { name: 'test/unit/hook.test.ts', status: 'failed', tests: ['skipped', 'skipped'] },
        { name: 'test/unit/setup.test.ts', status: 'failed', message: 'boom', tests: [] },
        { name: 'test/unit/c.test.ts', status: 'failed', tests: ['failed'] },
        ok('test/unit/d.test.ts'),
      ]),
      1,
    );
    expect(r.line).toBe('2 passed, 3 failed');
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      'test: test/unit/hook.test.ts failed outside any test (in a hook or a describe body)',
      'test: test/unit/setup.test.ts failed outside any test: boom',
    ]);
  });

  it('runtime errors count when the report has them', () => {
    expect(summary(report([ok('test/unit/a.test.ts')], { numRuntimeErrors: 2 }), 1).line).toBe('2 passed, 2 failed');
  });

  it('a non-zero exit with nothing counted as failed (an unhandled error) is at least 1 failed', () => {
    const r = summary(report([ok('test/unit/a.test.ts')]), 1);
    expect(r.line).toBe('2 passed, 1 failed');
    expect(r.stderr).toMatch(/vitest exited with status 1 though no test failed/);
    // Not added to failures already counted.
    expect(summary(report([{ name: 'test/unit/b.test.ts', status: 'failed', tests: ['failed'] }]), 1).line).toBe('0 passed, 1 failed');
  });

  it('no report, or an unreadable one: 0 passed, 1 failed, said on stderr', () => {
    const missing = summary(undefined, 1);
    expect(missing.line).toBe('0 passed, 1 failed');
    expect(missing.stderr).toMatch(/no readable vitest report/);
    expect(missing.status).toBe(0);
    expect(summary('{"numPassedTests": 3, "testRes', 1).line).toBe('0 passed, 1 failed');
    // Even with a clean exit status, no report is no result.
    expect(summary(undefined, 0).line).toBe('0 passed, 1 failed');
  });

  it("scripts/test calls it with the report and vitest's status, and nothing else prints its line", () => {
    const text = fs.readFileSync(path.join(REPO, 'scripts/test'), 'utf8');
    expect(text).toContain('node scripts/test-summary.mjs "$report" $rc');
    expect(text).not.toContain('numPassedTests');
  });
});
