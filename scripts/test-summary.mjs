#!/usr/bin/env node
// The closing line of scripts/test: "N passed, N failed", from vitest's JSON
// report and its exit status.
//
//   node scripts/test-summary.mjs REPORT.json VITEST_EXIT_STATUS
//
// A test file that failed outside any test (an error while importing it, in
// a beforeAll/afterAll hook, in a describe body) has no failed test in the
// report: it counts as one failed, and is named on stderr. A run that vitest
// ended with a non-zero status while nothing counted as failed (an unhandled
// error, a crash) counts as at least one failed, and so does a run with no
// readable report, whatever its status. Always exits 0 once the line is
// printed: scripts/test exits with vitest's status.
import fs from 'node:fs';
import path from 'node:path';

const [reportPath, rcArg] = process.argv.slice(2);
const rc = Number(rcArg ?? 0) || 0;

let report;
try {
  report = JSON.parse(fs.readFileSync(reportPath ?? '', 'utf8'));
} catch (e) {
  console.error(`test: no readable vitest report${reportPath ? ` at ${reportPath}` : ''} (${e.message})`);
}

const count = (v) => (Number.isFinite(v) ? v : 0);
let passed = 0;
let failed = 0;
if (report) {
  passed = count(report.numPassedTests);
  failed = count(report.numFailedTests) + count(report.numRuntimeErrors);
  for (const file of Array.isArray(report.testResults) ? report.testResults : []) {
    if (file?.status !== 'failed') continue;
    const tests = Array.isArray(file.assertionResults) ? file.assertionResults : [];
    if (tests.some((t) => t?.status === 'failed')) continue;
    failed++;
    const rel = typeof file.name === 'string' ? path.relative(process.cwd(), file.name) : '';
    const name = typeof file.name !== 'string' ? '(unnamed file)' : rel && !rel.startsWith('..') ? rel : file.name;
    const why = typeof file.message === 'string' && file.message.trim() ? `: ${file.message.trim().split('\n')[0]}` : ' (in a hook or a describe body)';
    console.error(`test: ${name} failed outside any test${why}`);
  }
}
if (!report) failed = 1;
else if (rc !== 0 && failed === 0) {
  failed = 1;
  console.error(`test: vitest exited with status ${rc} though no test failed (an unhandled error, or a crash)`);
}
console.log(`${passed} passed, ${failed} failed`);
