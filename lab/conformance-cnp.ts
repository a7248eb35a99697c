// The ClusterNetworkPolicy conformance suite of sigs.k8s.io/network-policy-api
// as scripts/conformance runs it: which features weir declares, and the summary of a run read from the test
// binary's event stream (`go tool test2json`). Ends with "N passed, N failed".
//
//   node lab/conformance-cnp.ts features
//   node lab/conformance-cnp.ts run-pattern SUITE_TESTS_DIR standard|experimental [--only NAME,...]
//   node lab/conformance-cnp.ts progress EVENTS.json...
//   node lab/conformance-cnp.ts report SUITE_TESTS_DIR WALL_SECONDS [--only NAME,...] EVENTS.json...
//
// --only: run (and report) those tests alone; a phase with none of them
// prints an empty pattern.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The suite's top-level test; each conformance test is one of its subtests. */
export const TOP = 'TestConformanceProfiles';
export const PROFILE = 'ClusterNetworkPolicy';
/** The suite's features weir implements: the standard one, named ports and egress to nodes (v0.3.0 has no feature for domainNames). */
export const WEIR_FEATURES: readonly string[] = ['ClusterNetworkPolicy', 'ClusterNetworkPolicyNamedPorts', 'ClusterNetworkPolicyEgressNodePeers'];
const STANDARD_FEATURES = new Set(['ClusterNetworkPolicy']);

export interface SuiteTest {
  name: string;
  /** The suite's feature names (SupportClusterNetworkPolicyNamedPorts -> ClusterNetworkPolicyNamedPorts). */
  features: string[];
}

export const isExperimental = (t: SuiteTest): boolean => t.features.some((f) => !STANDARD_FEATURES.has(f));

/** The conformance tests declared in the suite's Go sources (one `suite.ConformanceTest{ShortName, Features, ...}` literal each). */
export function parseSuiteSource(sources: readonly string[]): SuiteTest[] {
  const out: SuiteTest[] = [];
  for (const src of sources) {
    for (const m of src.matchAll(/ShortName:\s*"(\w+)"[\s\S]*?Features:\s*\[\]suite\.SupportedFeature\{([^}]*)\}/g)) {
      const features = [...(m[2] ?? '').matchAll(/suite\.Support(\w+)/g)].map((f) => f[1] as string);
      out.push({ name: m[1] as string, features });
    }
  }
  return out;
}

export function readSuiteDir(dir: string): SuiteTest[] {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.go') && !f.endsWith('_test.go'))
    .sort();
  return parseSuiteSource(files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')));
}

const alternation = (names: readonly string[]): string => `^(${names.join('|')})$`;

/** The -test.run pattern for one phase: the standard tests first, the experimental ones after (the suite's own order mixes them). */
export function runPattern(tests: readonly SuiteTest[], phase: 'standard' | 'experimental', only?: readonly string[]): string {
  const names = tests.filter((t) => isExperimental(t) === (phase === 'experimental') && (!only || only.includes(t.name))).map((t) => t.name);
  return names.length === 0 ? '' : `^${TOP}$/${alternation(names)}`;
}

export interface GoTestEvent {
  Action: string;
  Test?: string;
  Output?: string;
  Elapsed?: number;
}

/** test2json's stream: one JSON object a line; anything else (a line the binary printed before the converter) is left out. */
export function parseEvents(text: string): GoTestEvent[] {
  const out: GoTestEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as GoTestEvent;
      if (typeof e.Action === 'string') out.push(e);
    } catch {
      // A line cut short when the run was stopped.
    }
  }
  return out;
}

export interface CaseResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped' | 'unfinished';
  seconds: number;
  /** Failed subtests, each with what the suite said about it. */
  failures: { subtest: string; reason: string }[];
  skipReason?: string;
}

// "    file.go:57: text" -> "text"
const stripLocation = (s: string): string => s.trim().replace(/^[\w.-]+\.go:\d+: /, '');

/** Why a failed (sub)test failed, from its output: the probe and what was expected, or testify's error line. */
export function failureReason(lines: readonly string[]): string {
  const clean = lines.map(stripLocation).filter((l) => l !== '');
  const timedOut = clean.map((l) => /^panic: test timed out after (\S+)/.exec(l)?.[1]).find((x) => x !== undefined);
  if (timedOut) return `did not finish: the run's time limit (${timedOut}) stopped it`;
  const cmd = clean
    .filter((l) => l.startsWith('FAILED Command was '))
    .at(-1)
    ?.slice('FAILED Command was '.length);
  const expected = clean.filter((l) => /^(Expected connection|FAILED to execute)/.test(l)).at(-1);
  if (expected) return cmd ? `${cmd}: ${expected}` : expected;
  const err = clean.find((l) => /^Error:\s/.test(l));
  if (err) {
    const next = clean[clean.indexOf(err) + 1];
    return `${err.replace(/^Error:\s+/, '')}${next && !/^(Test|Messages):/.test(next) ? ` ${next}` : ''}`;
  }
  return clean.filter((l) => !/^(=== |--- |Error Trace:|Test:)/.test(l)).at(-1) ?? 'no message';
}

/** The conformance tests of one or more runs, in the order they started; their subtests' failures folded in. */
export function collectCases(events: readonly GoTestEvent[]): { cases: CaseResult[]; topFailure?: string } {
  const cases = new Map<string, CaseResult>();
  const output = new Map<string, string[]>();
  const ends = new Map<string, string>();
  let topFailed = false;
  const topOut: string[] = [];
  for (const e of events) {
    if (!e.Test) continue;
    if (e.Test === TOP) {
      if (e.Action === 'output' && e.Output) topOut.push(e.Output);
      if (e.Action === 'fail') topFailed = true;
      continue;
    }
    if (!e.Test.startsWith(`${TOP}/`)) continue;
    const parts = e.Test.split('/');
    const name = parts[1] as string;
    if (!cases.has(name)) cases.set(name, { name, status: 'unfinished', seconds: 0, failures: [] });
    const c = cases.get(name) as CaseResult;
    if (e.Action === 'output' && e.Output) {
      const lines = output.get(e.Test) ?? [];
      lines.push(...e.Output.split('\n'));
      output.set(e.Test, lines);
    }
    if (e.Action === 'pass' || e.Action === 'fail' || e.Action === 'skip') {
      ends.set(e.Test, e.Action);
      if (parts.length === 2) {
        c.status = e.Action === 'pass' ? 'passed' : e.Action === 'fail' ? 'failed' : 'skipped';
        c.seconds = e.Elapsed ?? 0;
      }
    }
  }
  for (const c of cases.values()) {
    const own = `${TOP}/${c.name}`;
    if (c.status === 'skipped') {
      const reason = (output.get(own) ?? [])
        .map(stripLocation)
        .find((l) => l.startsWith('Skipping'))
        ?.replace(/^Skipping \w+: /, '');
      if (reason !== undefined) c.skipReason = reason;
    }
    // Leaf subtests that failed (a parent fails with its child).
    const failedTests = [...ends].filter(([t, a]) => a === 'fail' && (t === own || t.startsWith(`${own}/`))).map(([t]) => t);
    const leaves = failedTests.filter((t) => !failedTests.some((u) => u !== t && u.startsWith(`${t}/`)));
    c.failures = leaves.map((t) => ({ subtest: t === own ? '' : t.slice(own.length + 1).replace(/_/g, ' '), reason: failureReason(output.get(t) ?? []) }));
    if (c.status === 'unfinished') c.failures = [{ subtest: '', reason: 'did not finish: the run was stopped at its time limit' }];
  }
  const anyCaseFailed = [...cases.values()].some((c) => c.status !== 'passed' && c.status !== 'skipped');
  const topFailure = topFailed && !anyCaseFailed ? failureReason(topOut.flatMap((o) => o.split('\n'))) : undefined;
  return { cases: [...cases.values()], ...(topFailure ? { topFailure } : {}) };
}

export function cnpReport(
  suite: readonly SuiteTest[],
  runs: { cases: CaseResult[]; topFailure?: string }[],
  wallSeconds?: number,
  only?: readonly string[],
): { text: string; ok: boolean } {
  const byName = new Map<string, CaseResult>();
  for (const r of runs) for (const c of r.cases) byName.set(c.name, c);
  const kind = (name: string): string => {
    const t = suite.find((s) => s.name === name);
    return t && isExperimental(t) ? `experimental: ${t.features.filter((f) => !STANDARD_FEATURES.has(f)).join(', ')}` : 'standard';
  };
  const ran = [...byName.values()].filter((c) => c.status !== 'skipped');
  const failed = ran.filter((c) => c.status !== 'passed');
  const lines = ran.map(
    (c) =>
      `${c.status === 'passed' ? 'PASS' : 'FAIL'}  ${c.name} [${kind(c.name)}] (${c.seconds.toFixed(0)} s)${c.status === 'unfinished' ? ' (did not finish)' : ''}`,
  );
  const setupFailures = runs.flatMap((r) => (r.topFailure ? [r.topFailure] : []));
  if (failed.length > 0 || setupFailures.length > 0) {
    lines.push('', 'Failures:');
    for (const f of failed) {
      for (const x of f.failures) {
        lines.push(`  ${f.name}${x.subtest ? ` / ${x.subtest}` : ''}`, `    ${x.reason}`);
      }
    }
    for (const s of setupFailures) lines.push('  the suite itself (setup or report)', `    ${s}`);
  }
  const skipped: string[] = [];
  for (const t of suite) {
    const c = byName.get(t.name);
    if (c?.status === 'skipped') skipped.push(`  ${t.name} [${kind(t.name)}]: skipped by the suite: ${c.skipReason ?? 'no reason given'}`);
    else if (!c && only && !only.includes(t.name)) skipped.push(`  ${t.name} [${kind(t.name)}]: not selected (--only)`);
    else if (!c) skipped.push(`  ${t.name} [${kind(t.name)}]: not reached (the run stopped first)`);
  }
  if (skipped.length > 0) lines.push('', `Not run (${skipped.length}):`, ...skipped);
  if (wallSeconds !== undefined) lines.push('', `wall time ${wallSeconds} s`);
  const nFailed = failed.length + setupFailures.length;
  lines.push(`${ran.length - failed.length} passed, ${nFailed} failed`);
  return { text: lines.join('\n'), ok: ran.length > 0 && nFailed === 0 };
}

/** One progress line: tests finished so far, failures, and the one running. */
export function progressLine(events: readonly GoTestEvent[]): string {
  const { cases } = collectCases(events);
  const done = cases.filter((c) => c.status !== 'unfinished');
  const running = cases.find((c) => c.status === 'unfinished');
  const nFailed = done.filter((c) => c.status === 'failed').length;
  return `${done.length} test(s) finished, ${nFailed} failed${running ? `; running ${running.name}` : ''}`;
}

function main(args: string[]): number {
  const at = args.indexOf('--only');
  const only = at < 0 ? undefined : (args[at + 1] ?? '').split(',').filter((n) => n !== '');
  const argv = at < 0 ? args : [...args.slice(0, at), ...args.slice(at + 2)];
  const [cmd, ...rest] = argv;
  const readEvents = (files: string[]): GoTestEvent[][] => files.map((f) => (fs.existsSync(f) ? parseEvents(fs.readFileSync(f, 'utf8')) : []));
  switch (cmd) {
    case 'features':
      process.stdout.write(`${WEIR_FEATURES.join(',')}\n`);
      return 0;
    case 'run-pattern':
      process.stdout.write(`${runPattern(readSuiteDir(rest[0] as string), rest[1] === 'experimental' ? 'experimental' : 'standard', only)}\n`);
      return 0;
    case 'progress':
      process.stdout.write(`${progressLine(readEvents(rest).flat())}\n`);
      return 0;
    case 'report': {
      const [dir, wall, ...files] = rest;
      const r = cnpReport(readSuiteDir(dir as string), readEvents(files).map(collectCases), wall === undefined ? undefined : Number(wall), only);
      process.stdout.write(`${r.text}\n`);
      return r.ok ? 0 : 1;
    }
    default:
      process.stderr.write(
        'usage: node lab/conformance-cnp.ts features | skip DIR | run-pattern DIR standard|experimental | progress EVENTS... | report DIR WALL EVENTS...\n',
      );
      return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(main(process.argv.slice(2)));
