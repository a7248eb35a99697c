// The soak's churn as data: a seeded sequence of changes that stays within
// its bounds and only ever names objects that exist in the model.
import { describe, expect, it } from 'vitest';
import { kubectlFor, podManifest } from '../../../lab/soak/manifests.ts';
import { Rng } from '../../../lab/soak/rng.ts';
import { type Action, actionObject, Scenario, SOAK_LABEL } from '../../../lab/soak/scenario.ts';

const CFG = {
  nodes: ['n1', 'n2', 'n3'],
  probeNamespace: 'soak-probe',
  probers: [{ name: 'probe-1', node: 'n1' }],
  ipBlocks: [{ cidr: '10.244.0.0/16', except: ['10.244.1.0/24'] }],
  maxNamespaces: 4,
  maxPods: 18,
  maxPolicies: 12,
};

const actions = (seed: number, n: number): Action[] => {
  const s = new Scenario(CFG, new Rng(seed));
  return Array.from({ length: n }, () => s.next());
};

describe('Scenario', () => {
  it('is a function of the seed', () => {
    expect(actions(5, 300)).toEqual(actions(5, 300));
    expect(actions(5, 300)).not.toEqual(actions(6, 300));
  });

  it('keeps each population within its bound, names only objects that exist, never reuses a name, never deletes the probers', () => {
    for (const seed of [1, 2, 3, 4]) {
      const s = new Scenario(CFG, new Rng(seed));
      const created = new Set<string>();
      for (let i = 0; i < 1500; i++) {
        const before = { ns: new Set(s.namespaces.keys()), pods: new Set(s.pods.keys()), pol: new Set(s.policies.keys()) };
        const a = s.next();
        const { key } = actionObject(a);
        if (a.op.endsWith('-create')) {
          expect(created.has(`${a.op}:${key}`)).toBe(false);
          created.add(`${a.op}:${key}`);
        }
        if (a.op === 'pod-create' || a.op === 'netpol-create') expect(before.ns.has(a.ns)).toBe(true);
        if (a.op === 'ns-delete') expect(a.ns).not.toBe('soak-probe');
        if (a.op === 'pod-delete') expect(a.ns).not.toBe('soak-probe');
        if (a.op === 'pod-relabel' || a.op === 'pod-delete') expect(before.pods.has(key)).toBe(true);
        if (a.op === 'netpol-update' || a.op === 'netpol-delete') expect(before.pol.has(key)).toBe(true);
        if (a.op === 'ns-relabel' || a.op === 'ns-delete') expect(before.ns.has(a.ns)).toBe(true);
        expect(s.churnNamespaces().length).toBeLessThanOrEqual(CFG.maxNamespaces);
        expect(s.churnPods().length).toBeLessThanOrEqual(CFG.maxPods);
        expect(s.policies.size).toBeLessThanOrEqual(CFG.maxPolicies);
        expect(s.pods.get('soak-probe/probe-1')?.prober).toBe(true);
      }
    }
  });

  it('draws every kind of change, and policies of every shape the soak claims', () => {
    const all = actions(9, 3000);
    const ops = new Set(all.map((a) => a.op));
    expect(ops).toEqual(
      new Set(['ns-create', 'ns-delete', 'ns-relabel', 'pod-create', 'pod-delete', 'pod-relabel', 'netpol-create', 'netpol-update', 'netpol-delete']),
    );
    const specs = JSON.stringify(all.flatMap((a) => (a.op === 'netpol-create' || a.op === 'netpol-update' ? [a.spec] : [])));
    for (const s of [
      '"ipBlock"',
      '"except"',
      '"namespaceSelector"',
      '"NotIn"',
      '"DoesNotExist"',
      '"endPort"',
      '"serve-81-tcp"',
      '"UDP"',
      '"Egress"',
      '"ingress":[]',
      'kubernetes.io/metadata.name',
    ])
      expect(specs).toContain(s);
  });
});

describe('kubectlFor', () => {
  it("creates pods pinned to their node, labelled as the soak's, serving the named ports", () => {
    const m = podManifest('ns1', 'p1', 'n2', { app: 'web' }) as {
      metadata: { labels: Record<string, string> };
      spec: { nodeName: string; containers: { ports: { name: string }[] }[] };
    };
    expect(m.spec.nodeName).toBe('n2');
    expect(m.metadata.labels).toEqual({ app: 'web', [SOAK_LABEL]: '1' });
    expect(m.spec.containers[0]?.ports.map((p) => p.name)).toEqual(['serve-80-tcp', 'serve-81-tcp']);
  });

  it("relabels with a merge patch that removes the soak's keys an action leaves out", () => {
    const c = kubectlFor({ op: 'pod-relabel', ns: 'a', name: 'p', labels: { app: 'db' } });
    expect(c.args.slice(0, 4)).toEqual(['patch', '-n', 'a', 'pod/p']);
    expect(JSON.parse(c.args.at(-1) ?? '')).toEqual({ metadata: { labels: { app: 'db', tier: null } } });
  });

  it('deletes without waiting and without failing on what is already gone', () => {
    expect(kubectlFor({ op: 'ns-delete', ns: 'x' }).args).toEqual(['delete', 'namespace/x', '--wait=false', '--ignore-not-found']);
  });
});
