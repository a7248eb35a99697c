// Which pods' DNS answers are held and which domain sets a learned name
// goes to, from the policies in force and the node's compiled endpoints;
// the sets named as the compiler names them.
import { describe, expect, it } from 'vitest';
import { dnsPlan, domainSetName, setsForName } from '../../../src/policy/cnp-dns.ts';
import { normalizeClusterPolicies } from '../../../src/policy/cnp-normalize.ts';
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import type { LocalEndpoint } from '../../../src/policy/compile.ts';

const cnp = (name: string, to: object[], action = 'Accept'): ClusterNetworkPolicy => ({
  metadata: { name },
  spec: { tier: 'Admin', priority: 10, subject: { namespaces: {} }, egress: [{ action, to }] } as never,
});

describe('dnsPlan', () => {
  const { policies } = normalizeClusterPolicies([
    cnp('dns', [{ domainNames: ['API.example.com.', '*.cdn.example.net'] }]),
    cnp('nets', [{ networks: ['10.0.0.0/8'] }], 'Deny'),
  ]);
  const ep = (name: string, ips: string[], admin: string[]): LocalEndpoint => ({
    namespace: 'ns',
    name,
    ips,
    ...(admin.length ? { tiers: { admin: { egress: { chain: 'adm_x_eg', policies: admin } } } } : {}),
  });
  const peer = policies.find((p) => p.name === 'dns')?.egress[0]?.peers;
  const d = peer !== 'any' && peer?.[0]?.kind === 'domains' ? peer[0] : undefined;

  it('holds answers for pods a domainNames policy selects, and knows the sets the table has', () => {
    if (!d) throw new Error('no domain peer');
    const set4 = domainSetName(4, d);
    expect(set4).toMatch(/^s[0-9a-f]+_dns4$/);
    const plan = dnsPlan(
      policies,
      [ep('a', ['10.244.1.5', 'fd00::5'], ['dns', 'nets']), ep('b', ['10.244.1.6'], ['nets']), ep('c', ['10.244.1.7'], [])],
      (n) => n === set4,
    );
    expect(plan.subjects).toEqual(
      new Map([
        [4, new Set(['10.244.1.5'])],
        [6, new Set(['fd00::5'])],
      ]),
    );
    expect(plan.sets).toEqual([{ name: set4, family: 4, patterns: ['*.cdn.example.net', 'api.example.com'] }]);
    expect(setsForName(plan, 'api.example.com', 4).map((s) => s.name)).toEqual([set4]);
    expect(setsForName(plan, 'a.b.cdn.example.net', 4)).toHaveLength(1);
    expect(setsForName(plan, 'cdn.example.net', 4)).toEqual([]);
    expect(setsForName(plan, 'api.example.com', 6)).toEqual([]);
    expect(setsForName(plan, 'www.example.com', 4)).toEqual([]);
  });
});
