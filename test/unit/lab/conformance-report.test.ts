// The conformance summary: parsed from ginkgo's JUnit report, and the closing
// line counts exactly what ran.
import { describe, expect, it } from 'vitest';
import { parseJunit, report } from '../../../lab/conformance-report.ts';

const XML = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" disabled="0" errors="0" failures="1" time="300">
  <testsuite name="Kubernetes e2e suite" package="/" tests="5" disabled="0" skipped="1" errors="0" failures="1" time="300">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="3.2"></testcase>
    <testcase name="[ReportBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="0"></testcase>
    <testcase name="[It] [sig-network] Netpol NetworkPolicy between server pods should support a &apos;default-deny-ingress&apos; policy [Feature:NetworkPolicy]" classname="Kubernetes e2e suite" status="passed" time="61.5"></testcase>
    <testcase name="[sig-network] Netpol NetworkPolicy between server pods should enforce updated policy [Feature:NetworkPolicy]" classname="Kubernetes e2e suite" status="failed" time="120.1">
      <failure message="Reachability matrix differs&#xA;expected: ..." type="failed">[FAILED] Reachability matrix differs</failure>
    </testcase>
    <testcase name="[sig-network] Netpol [Feature:SCTPConnectivity] should support a &apos;default-deny-ingress&apos; policy" classname="Kubernetes e2e suite" status="skipped" time="0">
      <skipped message="skipped"></skipped>
    </testcase>
    <testcase name="[sig-network] Netpol NetworkPolicy between server pods should allow ingress access on one named port [Feature:NetworkPolicy] &amp; more" classname="Kubernetes e2e suite" status="passed" time="58"/>
  </testsuite>
</testsuites>`;

describe('conformance report', () => {
  it('reads every case with its status, time and first failure line; suite nodes are left out', () => {
    const cases = parseJunit(XML);
    expect(cases.map((c) => c.status)).toEqual(['passed', 'failed', 'skipped', 'passed']);
    expect(cases[0]?.name).toMatch(/^\[sig-network\] .*'default-deny-ingress'/);
    expect(cases[1]).toMatchObject({ seconds: 120.1, message: 'Reachability matrix differs' });
    expect(cases[3]?.name).toMatch(/& more$/);
  });

  it('ends with the counts of what ran, and fails on a failure', () => {
    const r = report(parseJunit(XML), 300);
    const lines = r.text.split('\n');
    expect(lines.at(-1)).toBe('2 passed, 1 failed');
    expect(r.text).toMatch(/Failures:\n {2}\[sig-network\].*updated policy/);
    expect(r.text).toMatch(/1 not run: .*SCTPConnectivity.*wall time 300 s/);
    expect(r.ok).toBe(false);
  });

  it('is not ok when nothing ran', () => {
    const r = report([{ name: 'x', status: 'skipped', seconds: 0 }]);
    expect(r.text.split('\n').at(-1)).toBe('0 passed, 0 failed');
    expect(r.ok).toBe(false);
  });
});
