// Before the churn: the lab up, an earlier run's leftovers gone, the prober
// pods running (one per node, in the probe namespace), and what the
// scenario needs to know of the cluster (its nodes, its pod CIDRs).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { kubectlJson, kubectlOk, LabCommandError, labState, podNetnsPath } from '../commands/common.ts';
import { REPO } from '../kind.ts';
import { type LabState, labPods } from '../state.ts';
import { namespaceManifest, podManifest } from './manifests.ts';
import type { ProberPod } from './prober.ts';
import type { Labels } from './scenario.ts';
import { SOAK_LABEL } from './scenario.ts';

export const PROBE_NS = 'soak-probe';

/** The lab's state, bringing it up first (`scripts/lab up`, idempotent) when it is not. */
export function ensureLab(log: (l: string) => void): LabState {
  try {
    return labState();
  } catch (e) {
    if (!(e instanceof LabCommandError)) throw e;
    log(`the lab is not up (${e.message}); scripts/lab up`);
  }
  const r = spawnSync(path.join(REPO, 'scripts/lab'), ['up'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/lab up failed');
  return labState();
}

/** Deletes every namespace an earlier soak left (they carry SOAK_LABEL), waiting until they are gone. */
export async function removeLeftovers(state: LabState, log: (l: string) => void): Promise<void> {
  const left = (await kubectlJson<{ items: { metadata: { name: string } }[] }>(state, ['get', 'namespaces', '-l', `${SOAK_LABEL}=1`])).items.map(
    (n) => n.metadata.name,
  );
  if (left.length === 0) return;
  log(`removing ${left.length} namespace(s) an earlier soak left: ${left.join(' ')}`);
  await kubectlOk(state, ['delete', 'namespaces', '-l', `${SOAK_LABEL}=1`, '--wait=true', '--timeout=300s'], { timeoutMs: 330_000 });
}

/**
 * The cluster's pod CIDRs (kube-controller-manager's --cluster-cidr, read
 * from its static pod manifest on the control-plane node) and each node's
 * range: the scenario's ipBlock peers (a cluster range with a node's range
 * as an exception).
 */
export async function ipBlocks(state: LabState): Promise<{ cidr: string; except?: string[] }[]> {
  const cp = state.nodes[0];
  const manifest = cp ? fs.readFileSync(path.join(cp.rootfs, 'etc/kubernetes/manifests/kube-controller-manager.yaml'), 'utf8') : '';
  const cluster = /--cluster-cidr=(\S+)/.exec(manifest)?.[1]?.split(',') ?? [];
  const nodes = (await kubectlJson<{ items: { spec?: { podCIDRs?: string[] } }[] }>(state, ['get', 'nodes'])).items.flatMap((n) => n.spec?.podCIDRs ?? []);
  const v6 = (c: string): boolean => c.includes(':');
  return cluster.map((c) => {
    const ex = nodes.find((n) => v6(n) === v6(c));
    return ex ? { cidr: c, except: [ex] } : { cidr: c };
  });
}

/** One prober pod per node in PROBE_NS, running, with its network namespace. */
export async function startProberPods(state: LabState, labels: (name: string) => Labels): Promise<ProberPod[]> {
  const names = state.nodes.map((n) => ({ node: n.name, name: `probe-${n.name.replace(/^.*?-/, '')}` }));
  const docs = [namespaceManifest(PROBE_NS, {}), ...names.map((p) => podManifest(PROBE_NS, p.name, p.node, labels(p.name)))];
  await kubectlOk(state, ['create', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
  await kubectlOk(state, ['-n', PROBE_NS, 'wait', '--for=condition=Ready', ...names.map((p) => `pod/${p.name}`), '--timeout=180s'], { timeoutMs: 200_000 });
  const pods = await labPods();
  return names.map((p) => {
    const lp = pods.find((x) => x.namespace === PROBE_NS && x.name === p.name);
    const netnsPath = lp ? podNetnsPath(state, lp) : undefined;
    if (!netnsPath) throw new Error(`prober pod ${PROBE_NS}/${p.name} has no network namespace`);
    return { id: `${PROBE_NS}/${p.name}`, netnsPath };
  });
}

/** The node addresses, for the evaluator (traffic between a pod and its own node is always allowed). */
export async function nodeInfos(state: LabState): Promise<{ name: string; internalIPs: string[] }[]> {
  const nodes = (
    await kubectlJson<{ items: { metadata: { name: string }; status?: { addresses?: { type: string; address: string }[] } }[] }>(state, ['get', 'nodes'])
  ).items;
  return nodes.map((n) => ({ name: n.metadata.name, internalIPs: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address) }));
}
