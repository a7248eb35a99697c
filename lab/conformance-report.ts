// Reads the JUnit report of an upstream suite run (ginkgo's
// --ginkgo.junit-report) and prints one line per case, the failures with
// their first message line, what was skipped, and the closing line
// "N passed, N failed". Exit 0 only when something ran and nothing failed.
//
//   node lab/conformance-report.ts junit.xml [wall-seconds]
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

export interface CaseResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  seconds: number;
  /** First line of the failure message. */
  message?: string;
}

const unescapeXml = (s: string): string =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#39;/g, "'")
    .replace(/&#xA;/g, '\n')
    .replace(/&amp;/g, '&');

/** The cases of a JUnit report; ginkgo's setup and teardown nodes ([SynchronizedBeforeSuite] …) are left out. */
export function parseJunit(xml: string): CaseResult[] {
  const out: CaseResult[] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = m[1] ?? '';
    const body = m[3] ?? '';
    const name = unescapeXml(/\bname="([^"]*)"/.exec(attrs)?.[1] ?? '').replace(/^\[It\] /, '');
    if (/^\[(Synchronized|Report)?(Before|After)Suite\]/.test(name)) continue;
    const seconds = Number(/\btime="([^"]*)"/.exec(attrs)?.[1] ?? 0);
    const failure = /<(failure|error)\b([^>]*)>([\s\S]*?)<\/\1>|<(failure|error)\b([^>]*)\/>/.exec(body);
    if (failure) {
      const msg =
        unescapeXml(/\bmessage="([^"]*)"/.exec(failure[2] ?? failure[5] ?? '')?.[1] ?? failure[3] ?? '')
          .trim()
          .split('\n')[0] ?? '';
      out.push({ name, status: 'failed', seconds, message: msg });
    } else if (/<skipped\b/.test(body) || /\bstatus="skipped"/.test(attrs)) out.push({ name, status: 'skipped', seconds });
    else out.push({ name, status: 'passed', seconds });
  }
  return out;
}

export function report(cases: readonly CaseResult[], wallSeconds?: number): { text: string; ok: boolean } {
  const ran = cases.filter((c) => c.status !== 'skipped');
  const failed = ran.filter((c) => c.status === 'failed');
  const lines = ran.map((c) => `${c.status === 'passed' ? 'PASS' : 'FAIL'}  ${c.name} (${c.seconds.toFixed(0)} s)`);
  if (failed.length > 0) {
    lines.push('', 'Failures:');
    for (const f of failed) lines.push(`  ${f.name}`, `    ${f.message ?? ''}`);
  }
  const skipped = cases.length - ran.length;
  lines.push(
    '',
    `${skipped} not run: outside the focus, or skipped ([Feature:SCTPConnectivity]: this kernel has no SCTP sockets)${wallSeconds !== undefined ? `; wall time ${wallSeconds} s` : ''}`,
  );
  lines.push(`${ran.length - failed.length} passed, ${failed.length} failed`);
  return { text: lines.join('\n'), ok: ran.length > 0 && failed.length === 0 };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, wall] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node lab/conformance-report.ts junit.xml [wall-seconds]\n');
    process.exit(2);
  }
  let xml = '';
  try {
    xml = fs.readFileSync(file, 'utf8');
  } catch (e) {
    process.stdout.write(`no report at ${file}: ${(e as Error).message}\n0 passed, 1 failed\n`);
    process.exit(1);
  }
  const r = report(parseJunit(xml), wall === undefined ? undefined : Number(wall));
  process.stdout.write(`${r.text}\n`);
  process.exit(r.ok ? 0 : 1);
}
