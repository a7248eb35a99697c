// The agent's mirror of the cluster (src/agent/wiring/cluster.ts) against a
// real kube-apiserver and etcd (lab/controlplane), as the agent's own
// ServiceAccount with deploy/parts' RBAC, run in the test process so that the
// reflectors' back-off can be forced far longer than the time the test
// allows: a ClusterNetworkPolicy CRD installed after the mirror started is
// seen through the watch of the CRD, not through the kind's list retry.
//   - No CRD: every kind synced, ClusterNetworkPolicies listed empty and
//     reported unavailable ("not installed").
//   - The CRD installed (the standard channel from deploy/crds) and a policy
//     created: mirrored within CRD_SEEN_MS of Established, while the kind's
//     own retry waits out a back-off of at least FORCED_BACKOFF_MS / 2.
//   - The CRD deleted: the policies and the availability go at once.
//   - A ClusterRole without the CRD rule (older manifests): the refusal is
//     logged once, clearly, and the kind's list retry still finds the CRD.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../src/agent/agent-metrics.ts';
import type { ClusterCache } from '../../src/agent/cache.ts';
import { KubeConfig } from '../../src/agent/client-node.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import { type ClusterMirror, clusterCache, mirrorCluster } from '../../src/agent/wiring/cluster.ts';
import { type ApiBridge, bridgeApi } from '../helpers/api-bridge.ts';
import { kubectlOf, useControlPlane } from '../helpers/controlplane.ts';
import { tryEach } from '../helpers/teardown.ts';
import { eventually, waitEstablished } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const CRD_FILE = path.join(REPO, 'deploy/crds/clusternetworkpolicies.standard.yaml');
const CRD = 'crd/clusternetworkpolicies.policy.networking.k8s.io';
const RBAC = ['10-serviceaccount.yaml', '20-clusterrole.yaml', '30-clusterrolebinding.yaml'].map((f) => path.join(REPO, 'deploy/parts', f));
/** The kind's list retry waits at least half of this after a failure (jitter): far past CRD_SEEN_MS. */
const FORCED_BACKOFF_MS = 120_000;
/** Well within the back-off the agent had before the CRD watch (up to 30 s). */
const CRD_SEEN_MS = 10_000;

const fx = useControlPlane('crdwatch');
const { kubectl, apply } = kubectlOf(fx);

interface Mirrored {
  cache: ClusterCache;
  mirror: ClusterMirror;
  logs: string[];
  running: Promise<unknown>;
}

let tmp: string;
let bridge: ApiBridge;
const mirrors: Mirrored[] = [];

/** The agent's mirror as `serviceAccount` (in kube-system), its reflectors' back-off as given. */
function startMirror(serviceAccount: string, backoff: { minBackoffMs: number; maxBackoffMs: number }): Mirrored {
  const token = fx.cp.kubeconfigForToken(fx.cp.serviceAccountToken('kube-system', serviceAccount, 3600), path.join(tmp, `${serviceAccount}.kubeconfig`));
  const kc = new KubeConfig();
  kc.loadFromFile(bridge.kubeconfig(token));
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => logs.push(line) });
  const cfg = { hostFirewall: false, dataDir: path.join(tmp, serviceAccount) } as unknown as AgentConfig;
  const cache = clusterCache(cfg, log);
  const mirror = mirrorCluster({ cfg, log, kc, cache, metrics: new AgentMetrics(), changed: () => {}, reflectorOptions: backoff });
  const m = { cache, mirror, logs, running: mirror.run() };
  mirrors.push(m);
  return m;
}

const policy = (name: string) => ({
  apiVersion: 'policy.networking.k8s.io/v1beta1',
  kind: 'ClusterNetworkPolicy',
  metadata: { name },
  spec: {
    tier: 'Admin',
    priority: 10,
    subject: { namespaces: {} },
    ingress: [{ name: 'no-8080', action: 'Deny', from: [{ namespaces: {} }], protocols: [{ tcp: { destinationPort: { number: 8080 } } }] }],
  },
});

/** Installs the CRD and waits for Established; resolves with the time it was. */
async function installCrd(): Promise<number> {
  kubectl(['apply', '--server-side', '-f', CRD_FILE]);
  await waitEstablished(kubectl, CRD);
  return Date.now();
}

/** Creates a policy, retried while the API server's discovery does not show the new kind yet. */
const createPolicy = (name: string): Promise<string> => eventually(`ClusterNetworkPolicy ${name} created`, () => apply(policy(name)), CRD_SEEN_MS);

const logged = (m: Mirrored, re: RegExp): number => m.logs.filter((l) => re.test(l)).length;

let agent: Mirrored;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-crdwatch-'));
  for (const f of RBAC) kubectl(['apply', '-f', f]);
  bridge = await bridgeApi(fx.netns.name, fx.cp.url, tmp);
  agent = startMirror('weir-agent', { minBackoffMs: FORCED_BACKOFF_MS, maxBackoffMs: FORCED_BACKOFF_MS });
});

afterAll(() =>
  tryEach([
    ...mirrors.map((m) => async () => {
      m.mirror.stop();
      await m.running;
    }),
    () => bridge?.close(),
    () => tmp && fs.rmSync(tmp, { recursive: true, force: true }),
  ]),
);

describe('the ClusterNetworkPolicy CRD watched by name', () => {
  it('without the CRD every kind syncs, and ClusterNetworkPolicies are reported not installed', async () => {
    await eventually('every kind listed', () => agent.cache.allSynced, 30_000);
    expect(agent.mirror.clusterPolicies).toEqual({
      available: false,
      reason: expect.stringMatching(/ClusterNetworkPolicy CRD \(clusternetworkpolicies\.policy\.networking\.k8s\.io\) is not installed/),
    });
    expect(agent.cache.clusterpolicies.size).toBe(0);
    expect(logged(agent, /may not watch customresourcedefinitions/)).toBe(0);
  });

  it('the CRD installed and a policy created: mirrored within seconds of Established, not after the back-off of the kind', async () => {
    const established = await installCrd();
    await createPolicy('deny-8080');
    await eventually('the policy in the mirror', () => agent.cache.clusterpolicies.has('deny-8080'), CRD_SEEN_MS - (Date.now() - established));
    console.log(`CRD established -> policy mirrored: ${Date.now() - established} ms`);
    expect(agent.mirror.clusterPolicies).toEqual({ available: true, reason: undefined });
    expect(logged(agent, /clusterpolicies: the API serves it now/)).toBe(1);
  });

  it('the CRD deleted: its policies and its availability go at once', async () => {
    const t0 = Date.now();
    kubectl(['delete', CRD, '--wait=true', '--timeout=60s']);
    await eventually('the mirror without the kind', () => agent.mirror.clusterPolicies.available === false, CRD_SEEN_MS);
    console.log(`CRD deleted -> kind unavailable: ${Date.now() - t0} ms`);
    expect(agent.cache.clusterpolicies.size).toBe(0);
    expect(agent.mirror.clusterPolicies.reason).toMatch(/is not installed/);
  });

  it('a ClusterRole without the CRD rule: the refusal is logged once, and the list retry finds the CRD', async () => {
    const rules = [
      { apiGroups: [''], resources: ['pods', 'namespaces', 'nodes'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['policy.networking.k8s.io'], resources: ['clusternetworkpolicies'], verbs: ['get', 'list', 'watch'] },
    ];
    apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'weir-old', namespace: 'kube-system' } });
    apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'weir-old' }, rules });
    apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'weir-old' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'weir-old' },
      subjects: [{ kind: 'ServiceAccount', name: 'weir-old', namespace: 'kube-system' }],
    });
    // The back-off the agent has, short enough for the retry to find the CRD soon.
    const old = startMirror('weir-old', { minBackoffMs: 200, maxBackoffMs: 1000 });
    await eventually('the old role synced', () => old.cache.allSynced && old.mirror.clusterPolicies.available === false, 30_000);
    await installCrd();
    await createPolicy('deny-8080-again');
    await eventually('the policy through the list retry', () => old.cache.clusterpolicies.has('deny-8080-again'), 30_000);
    expect(old.mirror.clusterPolicies).toEqual({ available: true, reason: undefined });
    expect(logged(old, /may not watch customresourcedefinitions\/clusternetworkpolicies\.policy\.networking\.k8s\.io/)).toBe(1);
    // The agent with the rule saw the CRD come back through its watch.
    await eventually('the policy in the mirror with the rule', () => agent.cache.clusterpolicies.has('deny-8080-again'), CRD_SEEN_MS);
    expect(logged(agent, /may not watch customresourcedefinitions/)).toBe(0);
  });
});
