// The upstream e2e model (test/e2e/network/netpol): namespaces x, y, z, each
// labelled ns=<name>, with pods a, b, c labelled pod=<name>, each serving
// ports 80 and 81 over TCP, UDP and SCTP under the names serve-<port>-<proto>.
// For each policy the full 9x9 reachability matrix is computed with the
// evaluator and compared with a matrix written by hand from the docs (where
// a policy isolates x/a alone, only x/a's column or row is written).
// Rows are sources, columns destinations, in the order
//   x/a x/b x/c  y/a y/b y/c  z/a z/b z/c
// 'X' allowed, '.' denied. The diagonal is a pod talking to itself, which a
// pod cannot block. Every matrix is checked over IPv4 and over IPv6.
import { describe, expect, it } from 'vitest';
import type { IpFamily } from '../../../src/ip.ts';
import { type NetworkPolicy, type Pod, PolicyEvaluator, type Protocol, podEndpoint } from '../../../src/policy/index.ts';
import { ns, pod, policy } from './helpers.ts';

const NS = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const PROTOCOLS: Protocol[] = ['TCP', 'UDP', 'SCTP'];

const modelPods: Pod[] = NS.flatMap((n, i) =>
  PODS.map((p, j) =>
    pod(`${n}/${p}`, {
      labels: { pod: p },
      ips: [`10.${i + 1}.0.${j + 1}`, `fd00:${i + 1}::${j + 1}`],
      node: `node-${j}`,
      hostIPs: [`192.168.0.${j + 1}`, `fd00:ffff::${j + 1}`],
      ports: [80, 81].flatMap((port) => PROTOCOLS.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol }))),
    }),
  ),
);
const modelNamespaces = NS.map((n) => ns(n, { ns: n }));
const ALL = NS.flatMap((n) => PODS.map((p) => [n, p] as const));

function matrix(policies: NetworkPolicy[], protocol: Protocol, port: number, family: IpFamily): string[] {
  const e = new PolicyEvaluator({ pods: modelPods, namespaces: modelNamespaces, policies });
  return ALL.map(([sn, sp]) => {
    const row = ALL.map(([dn, dp]) => (e.evaluate({ src: podEndpoint(sn, sp), dst: podEndpoint(dn, dp), protocol, port, family }).allowed ? 'X' : '.')).join(
      '',
    );
    return `${sn}/${sp} ${row.slice(0, 3)} ${row.slice(3, 6)} ${row.slice(6)}`;
  });
}

/** Hand-written rows, labelled for readable diffs. */
const rows = (...r: string[]): string[] => ALL.map(([n, p], i) => `${n}/${p} ${r[i]}`);
const allAllowed = rows(...Array<string>(9).fill('XXX XXX XXX'));

// Every pod of x isolated for ingress with nothing allowed in.
const intoXDenied = rows(
  'X.. XXX XXX', //
  '.X. XXX XXX',
  '..X XXX XXX',
  '... XXX XXX',
  '... XXX XXX',
  '... XXX XXX',
  '... XXX XXX',
  '... XXX XXX',
  '... XXX XXX',
);

const podA = { matchLabels: { pod: 'a' } };

// Policies that isolate x/a alone: only x/a's column (its sources, in the
// order of the rows, 'X' reaching it) or only x/a's row is written; every
// other pair is allowed.
const intoXa = (column: string): string[] => rows(...[...column.replaceAll(' ', '')].map((c) => `${c}XX XXX XXX`));
const fromXa = (row: string): string[] => rows(row, ...Array<string>(8).fill('XXX XXX XXX'));

interface Case {
  name: string;
  policies: NetworkPolicy[];
  expect: [Protocol, number, string[]][];
}

const cases: Case[] = [
  {
    name: 'default-deny-ingress in x',
    policies: [policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] })],
    expect: [
      ['TCP', 80, intoXDenied],
      ['UDP', 81, intoXDenied],
      ['SCTP', 80, intoXDenied],
    ],
  },
  {
    name: 'x/a allows ingress from pod=b of its own namespace',
    policies: [policy('x/allow-b', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })],
    expect: [['TCP', 80, intoXa('XX. ... ...')]],
  },
  {
    name: 'x/a allows ingress from namespaces matching ns In (y)',
    policies: [
      policy('x/allow-y', {
        podSelector: podA,
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] } }] }],
      }),
    ],
    expect: [['UDP', 80, intoXa('X.. XXX ...')]],
  },
  {
    name: 'x/a: namespaceSelector ns NotIn (x) AND podSelector pod=b, in one peer',
    policies: [
      policy('x/and', {
        podSelector: podA,
        ingress: [
          {
            from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchLabels: { pod: 'b' } } }],
          },
        ],
      }),
    ],
    expect: [['TCP', 81, intoXa('X.. .X. .X.')]],
  },
  {
    name: 'x/a: namespaceSelector ns NotIn (x) OR podSelector pod=b, two peers',
    policies: [
      policy('x/or', {
        podSelector: podA,
        ingress: [
          {
            from: [
              { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    ],
    expect: [['TCP', 80, intoXa('XX. XXX XXX')]],
  },
  {
    name: 'x/a egress only to pod=a in namespace ns=y',
    policies: [
      policy('x/egress-to-ya', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: podA }] }],
      }),
    ],
    expect: [['SCTP', 81, fromXa('X.. X.. ...')]],
  },
  {
    name: 'pods of x allow ingress on the named port serve-81-udp from all namespaces',
    policies: [policy('x/named', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] })],
    expect: [
      ['UDP', 81, allAllowed],
      ['UDP', 80, intoXDenied],
      ['TCP', 81, intoXDenied],
      ['SCTP', 81, intoXDenied],
    ],
  },
  {
    name: 'x/a allows SCTP 80 only',
    policies: [policy('x/sctp', { podSelector: podA, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] })],
    expect: [
      ['SCTP', 80, allAllowed],
      ['TCP', 80, intoXa('X.. ... ...')],
      ['UDP', 80, intoXa('X.. ... ...')],
      ['SCTP', 81, intoXa('X.. ... ...')],
    ],
  },
  {
    name: 'default deny ingress and egress in x',
    policies: [policy('x/deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })],
    expect: [
      [
        'TCP',
        80,
        rows(
          'X.. ... ...', //
          '.X. ... ...',
          '..X ... ...',
          '... XXX XXX',
          '... XXX XXX',
          '... XXX XXX',
          '... XXX XXX',
          '... XXX XXX',
          '... XXX XXX',
        ),
      ],
    ],
  },
  {
    name: 'pods of x allow TCP 80-81 (endPort) from anywhere',
    policies: [policy('x/range', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })],
    expect: [
      ['TCP', 80, allAllowed],
      ['TCP', 81, allAllowed],
      ['UDP', 80, intoXDenied],
    ],
  },
  {
    name: 'x/a egress only to the named port serve-80-tcp of any pod',
    policies: [policy('x/egress-named', { podSelector: podA, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
    expect: [
      ['TCP', 80, allAllowed],
      ['TCP', 81, fromXa('X.. ... ...')],
      ['UDP', 80, fromXa('X.. ... ...')],
    ],
  },
  {
    name: 'stacked: x/a from pod=b in x, plus from ns=z',
    policies: [
      policy('x/from-b', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] }),
      policy('x/from-z', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }] }),
    ],
    expect: [['UDP', 81, intoXa('XX. ... XXX')]],
  },
];

describe('upstream e2e truth model', () => {
  for (const c of cases) {
    for (const [protocol, port, want] of c.expect) {
      for (const family of [4, 6] as const) {
        it(`${c.name}: ${protocol}/${port} over IPv${family}`, () => {
          expect(matrix(c.policies, protocol, port, family)).toEqual(want);
        });
      }
    }
  }

  it('with no policies every pod reaches every pod on every port and protocol', () => {
    for (const protocol of PROTOCOLS) for (const port of [80, 81]) expect(matrix([], protocol, port, 4)).toEqual(allAllowed);
  });
});
