// The ClusterNetworkPolicy conformance run: the suite's tests read from its
// Go sources, the patterns that choose what runs, and the summary read from
// test2json's events, ending with the counts of what ran.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cnpReport, collectCases, failureReason, parseEvents, parseSuiteSource, progressLine, runPattern, TOP } from '../../../lab/conformance-cnp.ts';

const SRC_A = `
func init() {
	ConformanceTests = append(ConformanceTests,
		CNPAdminTierEgressNamedPort,
		CNPAdminTierEgressNodePeers,
	)
}

var CNPAdminTierEgressNamedPort = suite.ConformanceTest{
	ShortName:   "CNPAdminTierEgressNamedPort",
	Description: "Tests support for egress traffic on a named port",
	Features: []suite.SupportedFeature{
		suite.SupportClusterNetworkPolicy,
		suite.SupportClusterNetworkPolicyNamedPorts,
	},
	Manifests: []string{"base/admin_tier/standard-egress-tcp-rules.yaml"},
}

var CNPAdminTierEgressNodePeers = suite.ConformanceTest{
	ShortName:   "CNPAdminTierEgressNodePeers",
	Features: []suite.SupportedFeature{
		suite.SupportClusterNetworkPolicy,
		suite.SupportClusterNetworkPolicyEgressNodePeers,
	},
}`;
const SRC_B = `
var CNPAdminTierEgressSCTP = suite.ConformanceTest{
	ShortName:   "CNPAdminTierEgressSCTP",
	Features: []suite.SupportedFeature{
		suite.SupportClusterNetworkPolicy,
	},
}
var CNPAdminTierEgressTCP = suite.ConformanceTest{
	ShortName:   "CNPAdminTierEgressTCP",
	Features: []suite.SupportedFeature{
		suite.SupportClusterNetworkPolicy,
	},
}
var CNPBaselineTierGress = suite.ConformanceTest{
	ShortName:   "CNPBaselineTierGress",
	Features: []suite.SupportedFeature{
		suite.SupportClusterNetworkPolicy,
	},
}`;

const ev = (Action: string, Test?: string, more: { Output?: string; Elapsed?: number } = {}): string =>
  JSON.stringify({ Time: '2026-12-07T13:05:00Z', Action, Package: 'cnp', ...(Test ? { Test } : {}), ...more });
const out = (Test: string, Output: string): string => ev('output', Test, { Output });
const EGRESS_TCP = `${TOP}/CNPAdminTierEgressTCP`;
const DENY = `${EGRESS_TCP}/Should_support_a_'deny-egress'_policy_for_TCP_protocol`;
const ALLOW = `${EGRESS_TCP}/Should_support_an_'allow-egress'_policy_for_TCP_protocol`;
const GRESS = `${TOP}/CNPBaselineTierGress`;
const PEERS = `${TOP}/CNPAdminTierEgressNodePeers`;

const STANDARD_RUN = [
  'some line the binary printed before test2json saw it',
  ev('start'),
  ev('run', TOP),
  out(TOP, '=== RUN   TestConformanceProfiles\n'),
  out(TOP, '    conformance_profile_test.go:120: Running conformance profile tests with cleanup: false\n'),
  ev('run', EGRESS_TCP),
  ev('run', ALLOW),
  ev('pass', ALLOW, { Elapsed: 4.1 }),
  ev('run', DENY),
  out(DENY, '    helper.go:100: FAILED Command was [/agnhost connect --timeout=3s --protocol=tcp 10.244.1.7:8080]\n'),
  out(
    DENY,
    '    helper.go:101: Expected connection to be dropped from network-policy-conformance-gryffindor/harry-potter-0 to 10.244.1.7, but instead it returned a different status: REFUSED\n',
  ),
  out(
    DENY,
    '    helper.go:74: \n        \tError Trace:\t/helper.go:74\n        \tError:      \tCondition never satisfied\n        \tTest:       \tTestConformanceProfiles/CNPAdminTierEgressTCP/Should_support_a_deny\n',
  ),
  out(DENY, "    --- FAIL: TestConformanceProfiles/CNPAdminTierEgressTCP/Should_support_a_'deny-egress'_policy_for_TCP_protocol (13.20s)\n"),
  ev('fail', DENY, { Elapsed: 13.2 }),
  ev('fail', EGRESS_TCP, { Elapsed: 17.9 }),
  ev('run', GRESS),
  ev('pass', GRESS, { Elapsed: 120.4 }),
  ev('fail', TOP, { Elapsed: 160 }),
  ev('fail'),
].join('\n');

const EXPERIMENTAL_RUN = [
  ev('run', TOP),
  ev('run', PEERS),
  out(PEERS, '    suite.go:210: Skipping CNPAdminTierEgressNodePeers: suite does not support ClusterNetworkPolicyEgressNodePeers\n'),
  ev('skip', PEERS, { Elapsed: 0 }),
  ev('run', `${TOP}/CNPAdminTierEgressNamedPort`),
  out(`${TOP}/CNPAdminTierEgressNamedPort`, '    helper.go:90: probing\n'),
  // The run stopped here: no end for this test, a line cut short.
  '{"Time":"2026-12-07T13:29:59Z","Action":"outp',
].join('\n');

describe('the suite read from its Go sources', () => {
  const suite = parseSuiteSource([SRC_A, SRC_B]);

  it('lists every conformance test with its features, support prefix dropped', () => {
    expect(suite).toEqual([
      { name: 'CNPAdminTierEgressNamedPort', features: ['ClusterNetworkPolicy', 'ClusterNetworkPolicyNamedPorts'] },
      { name: 'CNPAdminTierEgressNodePeers', features: ['ClusterNetworkPolicy', 'ClusterNetworkPolicyEgressNodePeers'] },
      { name: 'CNPAdminTierEgressSCTP', features: ['ClusterNetworkPolicy'] },
      { name: 'CNPAdminTierEgressTCP', features: ['ClusterNetworkPolicy'] },
      { name: 'CNPBaselineTierGress', features: ['ClusterNetworkPolicy'] },
    ]);
  });

  it('runs standard tests in one phase and experimental ones in the other, the SCTP ones included', () => {
    expect(runPattern(suite, 'standard')).toBe(`^${TOP}$/^(CNPAdminTierEgressSCTP|CNPAdminTierEgressTCP|CNPBaselineTierGress)$`);
    expect(runPattern(suite, 'experimental')).toBe(`^${TOP}$/^(CNPAdminTierEgressNamedPort|CNPAdminTierEgressNodePeers)$`);
    // --only: those tests alone; a phase with none of them runs nothing.
    expect(runPattern(suite, 'standard', ['CNPBaselineTierGress', 'CNPAdminTierEgressNodePeers'])).toBe(`^${TOP}$/^(CNPBaselineTierGress)$`);
    expect(runPattern(suite, 'experimental', ['CNPBaselineTierGress'])).toBe('');
  });
});

describe('a run read from its events', () => {
  it('folds subtests into their test, with the probe and what was expected of each failed one', () => {
    const { cases, topFailure } = collectCases(parseEvents(STANDARD_RUN));
    expect(cases.map((c) => [c.name, c.status, c.seconds])).toEqual([
      ['CNPAdminTierEgressTCP', 'failed', 17.9],
      ['CNPBaselineTierGress', 'passed', 120.4],
    ]);
    expect(cases[0]?.failures).toEqual([
      {
        subtest: "Should support a 'deny-egress' policy for TCP protocol",
        reason:
          '[/agnhost connect --timeout=3s --protocol=tcp 10.244.1.7:8080]: Expected connection to be dropped from network-policy-conformance-gryffindor/harry-potter-0 to 10.244.1.7, but instead it returned a different status: REFUSED',
      },
    ]);
    // The top-level test fails with its subtests: not a failure of its own.
    expect(topFailure).toBeUndefined();
  });

  it("keeps the suite's reason for a skip, and marks a test the run stopped in as unfinished", () => {
    const { cases } = collectCases(parseEvents(EXPERIMENTAL_RUN));
    expect(cases[0]).toMatchObject({
      name: 'CNPAdminTierEgressNodePeers',
      status: 'skipped',
      skipReason: 'suite does not support ClusterNetworkPolicyEgressNodePeers',
    });
    expect(cases[1]).toMatchObject({ name: 'CNPAdminTierEgressNamedPort', status: 'unfinished' });
    expect(progressLine(parseEvents(`${STANDARD_RUN}\n${EXPERIMENTAL_RUN}`))).toBe('3 test(s) finished, 1 failed; running CNPAdminTierEgressNamedPort');
  });

  it('reports a suite that failed before any test (setup) with its error', () => {
    const setup = [
      ev('run', TOP),
      out(
        TOP,
        '    helper.go:144: \n        \tError Trace:\t/helper.go:144\n        \tError:      \tReceived unexpected error:\n        \t            \tcontext deadline exceeded\n        \tMessages:   \terror waiting for namespaces to be ready\n',
      ),
      ev('fail', TOP, { Elapsed: 300 }),
    ].join('\n');
    expect(collectCases(parseEvents(setup))).toEqual({ cases: [], topFailure: 'Received unexpected error: context deadline exceeded' });
  });

  it('says so when the time limit stopped a test', () => {
    expect(
      failureReason([
        '    helper.go:90: probing',
        'panic: test timed out after 25m0s',
        '\trunning tests:',
        '\t\tTestConformanceProfiles/CNPAdminTierGress (2m1s)',
      ]),
    ).toBe("did not finish: the run's time limit (25m0s) stopped it");
  });

  it('names the last message when there is neither a probe nor an error line', () => {
    expect(
      failureReason(['    conformance_profile_test.go:58: Error loading Kubernetes config: no configuration', '--- FAIL: TestConformanceProfiles (0.00s)']),
    ).toBe('Error loading Kubernetes config: no configuration');
  });
});

describe('the summary', () => {
  const suite = parseSuiteSource([SRC_A, SRC_B]);

  it('lists each test run, the failures, what was not run and why, and ends with the counts', () => {
    const r = cnpReport(suite, [collectCases(parseEvents(STANDARD_RUN)), collectCases(parseEvents(EXPERIMENTAL_RUN))], 1490);
    const lines = r.text.split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'FAIL  CNPAdminTierEgressTCP [standard] (18 s)',
      'PASS  CNPBaselineTierGress [standard] (120 s)',
      'FAIL  CNPAdminTierEgressNamedPort [experimental: ClusterNetworkPolicyNamedPorts] (0 s) (did not finish)',
    ]);
    expect(r.text).toMatch(
      /Failures:\n {2}CNPAdminTierEgressTCP \/ Should support a 'deny-egress' policy for TCP protocol\n {4}\[\/agnhost connect .*REFUSED\n {2}CNPAdminTierEgressNamedPort\n {4}did not finish/,
    );
    expect(r.text).toContain(
      'CNPAdminTierEgressNodePeers [experimental: ClusterNetworkPolicyEgressNodePeers]: skipped by the suite: suite does not support ClusterNetworkPolicyEgressNodePeers',
    );
    expect(r.text).toContain('CNPAdminTierEgressSCTP [standard]: not reached (the run stopped first)');
    expect(r.text).toContain('Not run (2):');
    expect(lines.at(-2)).toBe('wall time 1490 s');
    expect(lines.at(-1)).toBe('1 passed, 2 failed');
    expect(r.ok).toBe(false);
  });

  it('lists tests the run never reached, and is ok only when something ran and nothing failed', () => {
    const passOnly = [ev('run', TOP), ev('run', GRESS), ev('pass', GRESS, { Elapsed: 3 }), ev('pass', TOP, { Elapsed: 3 })].join('\n');
    const r = cnpReport(suite, [collectCases(parseEvents(passOnly))]);
    expect(r.text).toContain('CNPAdminTierEgressTCP [standard]: not reached (the run stopped first)');
    const selected = cnpReport(suite, [collectCases(parseEvents(passOnly))], undefined, ['CNPBaselineTierGress']);
    expect(selected.text).toContain('CNPAdminTierEgressTCP [standard]: not selected (--only)');
    expect(r.text.split('\n').at(-1)).toBe('1 passed, 0 failed');
    expect(r.ok).toBe(true);
    const none = cnpReport(suite, [collectCases([])]);
    expect(none.text.split('\n').at(-1)).toBe('0 passed, 0 failed');
    expect(none.ok).toBe(false);
  });

  it('reports a failed SCTP probe like any other: the test fails, with the probe and what it got', () => {
    const T = `${TOP}/CNPAdminTierEgressSCTP`;
    const sub = `${T}/Should_support_a_'deny-egress'_policy_for_SCTP_protocol`;
    const run = [
      ev('run', TOP),
      ev('run', T),
      out(sub, '    helper.go:97: FAILED Command was [/agnhost connect --timeout=3s --protocol=sctp 10.244.1.193:9003]\n'),
      out(sub, '    helper.go:97: Expected connection to succeed from a/b to 10.244.1.193, but instead it miserably failed. stderr: TIMEOUT\n'),
      ev('fail', sub, { Elapsed: 10 }),
      ev('fail', T, { Elapsed: 10 }),
      ev('fail', TOP, { Elapsed: 10 }),
    ].join('\n');
    const r = cnpReport(suite, [collectCases(parseEvents(run))]);
    expect(r.text).toContain("CNPAdminTierEgressSCTP / Should support a 'deny-egress' policy for SCTP protocol\n");
    expect(r.text).toMatch(/--protocol=sctp 10\.244\.1\.193:9003.*stderr: TIMEOUT/s);
    expect(r.text.split('\n').at(-1)).toBe('0 passed, 1 failed');
    expect(r.ok).toBe(false);
  });

  it('counts a failed setup as a failure', () => {
    const setup = [ev('run', TOP), out(TOP, '    x.go:1: boom\n'), ev('fail', TOP, { Elapsed: 1 })].join('\n');
    const r = cnpReport(suite, [collectCases(parseEvents(setup))]);
    expect(r.text).toContain('the suite itself (setup or report)\n    boom');
    expect(r.text.split('\n').at(-1)).toBe('0 passed, 1 failed');
    expect(r.ok).toBe(false);
  });
});

describe('the pin', () => {
  it('builds the suite at the release deploy/crds/ is generated from', () => {
    const repo = path.resolve(import.meta.dirname, '../../..');
    const goMod = fs.readFileSync(path.join(repo, 'scripts/cnp/go.mod'), 'utf8');
    const crds = fs.readFileSync(path.join(repo, 'scripts/gen-manifests-crds.mjs'), 'utf8');
    const suiteVersion = /^\s*(?:require\s+)?sigs\.k8s\.io\/network-policy-api (v\S+)$/m.exec(goMod)?.[1];
    const crdVersion = /module: 'sigs\.k8s\.io\/network-policy-api',\s*version: '(v[^']+)'/.exec(crds)?.[1];
    expect(suiteVersion).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(suiteVersion).toBe(crdVersion);
  });
});
