// weirctl policy NAMESPACE/POD: what the pod may receive and send, rule by
// rule, with the policy each allowance comes from, from the cluster as the
// agent sees it (GET /state) and the reference evaluator's selection; with
// the ClusterNetworkPolicy tiers around the NetworkPolicies (policy-tiers.ts).

import { PolicyError } from '../../policy/errors.ts';
import { PolicyEvaluator } from '../../policy/evaluator.ts';
import { type Direction, normalizePolicy } from '../../policy/normalize.ts';
import { namedPortsOf } from '../../policy/ports.ts';
import type { ClusterState, NetworkPolicy } from '../../policy/types.ts';
import { type CommandResult, type Context, CtlError } from '../context.ts';
import { parsePodRef, podIps, podKey } from '../resolve.ts';
import { paint, renderTable } from '../table.ts';
import { describePeers, describePorts } from '../words.ts';
import { type ClusterPolicyReport, clusterTiersOf, formatTiers, tierOrder } from './policy-tiers.ts';

export interface Allowance {
  /** `namespace/name` of the policy. */
  policy: string;
  /** Index in spec.ingress / spec.egress. */
  rule: number;
  /** Who: the rule's from (ingress) or to (egress), in words. */
  peers: string[];
  ports: string[];
}

export interface DirectionReport {
  isolated: boolean;
  /** The policies of this direction that select the pod. */
  policies: string[];
  allowances: Allowance[];
  /** One line: "not isolated: all allowed", "isolated: nothing allowed", "isolated: 2 rules allow". */
  summary: string;
  /** The ClusterNetworkPolicies selecting the pod in this direction, Admin tier first, in order of evaluation (empty: none). */
  clusterPolicies: ClusterPolicyReport[];
  /** The order a packet meets the tiers in ("Admin tier: a (10) -> NetworkPolicy: shop/x -> default"), when ClusterNetworkPolicies select the pod. */
  order?: string;
}

export interface PodPolicyReport {
  pod: string;
  node: string | undefined;
  ips: string[];
  hostNetwork: boolean;
  ingress: DirectionReport;
  egress: DirectionReport;
  /** Policies of the pod's namespace weir cannot express (it enforces them as deny-all for the pods they select). */
  warnings: string[];
}

/** The policies that normalize, and errors for those that do not. */
export function usablePolicies(policies: readonly NetworkPolicy[]): { ok: NetworkPolicy[]; errors: PolicyError[] } {
  const ok: NetworkPolicy[] = [];
  const errors: PolicyError[] = [];
  for (const p of policies) {
    try {
      normalizePolicy(p);
      ok.push(p);
    } catch (e) {
      if (e instanceof PolicyError) errors.push(e);
      else throw e;
    }
  }
  return { ok, errors };
}

export function explainPod(state: ClusterState, namespace: string, name: string): PodPolicyReport {
  const key = `${namespace}/${name}`;
  const pod = state.pods.find((p) => podKey(p) === key);
  if (!pod) throw new CtlError(`pod ${key} is not in the cluster state the agent holds`);
  const { ok, errors } = usablePolicies(state.policies);
  const warnings = errors
    .filter((e) => e.policy?.namespace === namespace)
    .map((e) => `${e.message} (weir enforces this policy as deny-all for the pods it selects)`);
  const hostNetwork = pod.spec?.hostNetwork === true;
  const ips = podIps(pod);
  const base = { pod: key, node: pod.spec?.nodeName, ips, hostNetwork, warnings };
  if (hostNetwork) {
    const open: DirectionReport = {
      isolated: false,
      policies: [],
      allowances: [],
      summary: 'hostNetwork pod: NetworkPolicy and ClusterNetworkPolicy do not apply to it',
      clusterPolicies: [],
    };
    return { ...base, ingress: open, egress: open };
  }
  let ev: PolicyEvaluator;
  try {
    ev = new PolicyEvaluator({ ...state, policies: ok });
  } catch (e) {
    throw new CtlError(`cannot evaluate the cluster state: ${(e as Error).message}`);
  }
  const named = namedPortsOf(pod);
  const cluster = clusterTiersOf(state, ev, { namespace, name }, named);
  warnings.push(...cluster.warnings);
  const direction = (d: Direction): DirectionReport => {
    let refs: ReturnType<PolicyEvaluator['policiesFor']>;
    try {
      refs = ev.policiesFor({ namespace, name }, d);
    } catch (e) {
      throw new CtlError((e as Error).message);
    }
    const policies = refs.map((r) => `${r.namespace}/${r.name}`);
    const allowances: Allowance[] = [];
    for (const ref of refs) {
      const np = ev.policies.find((p) => p.namespace === ref.namespace && p.name === ref.name);
      for (const rule of np?.[d] ?? []) {
        allowances.push({
          policy: `${ref.namespace}/${ref.name}`,
          rule: rule.index,
          peers: describePeers(rule.peers, ref.namespace),
          ports: describePorts(rule.ports, { direction: d, named }),
        });
      }
    }
    const summary =
      policies.length === 0
        ? 'not isolated: all allowed'
        : allowances.length === 0
          ? 'isolated: nothing allowed'
          : `isolated: ${allowances.length} rule${allowances.length === 1 ? '' : 's'} allow${allowances.length === 1 ? 's' : ''}`;
    const clusterPolicies = cluster.tiers(d);
    return {
      isolated: policies.length > 0,
      policies,
      allowances,
      summary,
      clusterPolicies,
      ...(clusterPolicies.length ? { order: tierOrder(clusterPolicies, policies) } : {}),
    };
  };
  return { ...base, ingress: direction('ingress'), egress: direction('egress') };
}

export function formatPodPolicy(r: PodPolicyReport, color: boolean): string {
  const out: string[] = [`Pod ${r.pod}${r.ips.length ? ` (${r.ips.join(', ')})` : ''}${r.node ? ` on node ${r.node}` : ''}`];
  for (const d of ['ingress', 'egress'] as const) {
    const rep = r[d];
    const title = paint(d === 'ingress' ? 'Ingress' : 'Egress', 'bold', color);
    out.push('');
    out.push(
      `${title}: ${rep.isolated ? paint(rep.summary, 'yellow', color) : rep.summary}${rep.policies.length ? ` (selected by ${rep.policies.join(', ')})` : ''}`,
    );
    if (rep.order) out.push(`  in order: ${rep.order}`);
    const tiers = formatTiers(rep.clusterPolicies ?? [], d, color);
    if (tiers) out.push(tiers);
    if (rep.allowances.length > 0) {
      const rows = rep.allowances.map((a) => [a.peers.join('\n'), a.ports.join('\n'), `${a.policy} ${d}[${a.rule}]`]);
      out.push(renderTable([d === 'ingress' ? 'FROM' : 'TO', 'PORTS', 'POLICY RULE'], rows, { color, indent: '  ' }));
    }
  }
  if (r.warnings.length) out.push('', ...r.warnings.map((w) => paint(`warning: ${w}`, 'red', color)));
  return out.join('\n');
}

export async function runPolicy(ctx: Context, target: string): Promise<CommandResult> {
  const ref = parsePodRef(target);
  if (!ref) throw new CtlError(`expected NAMESPACE/POD, got ${JSON.stringify(target)}`);
  const report = explainPod(await ctx.state(), ref.namespace, ref.name);
  return { json: report, text: formatPodPolicy(report, ctx.opts.color) };
}
