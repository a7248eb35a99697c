// weirctl trace --from POD|IP --to POD|IP --port N [--protocol TCP]: the
// reference evaluator's verdict and reasons (from GET /state), and the
// kernel's own answer (trace/kernel.ts) when the source is a pod of this
// node, flagging any disagreement. With ClusterNetworkPolicies, each
// direction also says which tier decided (Admin, NetworkPolicy, Baseline or
// the default) and by which rule.
import { tryParseIp } from '../../ip.ts';
import { formatPolicyRef } from '../../policy/errors.ts';
import {
  type Connection,
  type DirectionVerdict,
  type Endpoint,
  type EvaluatorOptions,
  PolicyEvaluator,
  type Reason,
  type ResolvedEndpoint,
  type Verdict,
} from '../../policy/evaluator.ts';
import { formatEndpoint, formatReason, formatVerdict } from '../../policy/explain.ts';
import { parsePortRanges } from '../../policy/host-normalize.ts';
import { METADATA_GUARD_CHAIN } from '../../policy/metadata-guard.ts';
import type { Protocol } from '../../policy/types.ts';
import { type AgentStatus, type CommandResult, type Context, CtlError } from '../context.ts';
import { parsePodRef, recordOfPod, vethOf } from '../resolve.ts';
import { paint } from '../table.ts';
import { type KernelAnswer, kernelTrace } from '../trace/kernel.ts';
import { findPodNetns } from '../trace/netns.ts';
import { usablePolicies } from './policy.ts';

export interface DirectionReport {
  subject: string | null;
  isolated: boolean;
  allowed: boolean;
  policies: string[];
  reasons: string[];
  /** The ClusterNetworkPolicies selecting the subject in this direction, Admin tier first (absent: none). */
  clusterPolicies?: string[];
  /** Which tier decided, when ClusterNetworkPolicies select the subject: Admin, NetworkPolicy, Baseline, or default (none decided). */
  tier?: 'Admin' | 'NetworkPolicy' | 'Baseline' | 'default';
  /** The rule that decided, when one did: a ClusterNetworkPolicy rule (Accept or Deny) or the first NetworkPolicy rule that allows. */
  decidedBy?: DecidingRule;
}

export interface DecidingRule {
  /** MetadataGuard: the cloud metadata guard (policy `metadata-guard`, no rule of a policy). */
  kind: 'ClusterNetworkPolicy' | 'NetworkPolicy' | 'MetadataGuard';
  /** `name` of a ClusterNetworkPolicy, `namespace/name` of a NetworkPolicy. */
  policy: string;
  /** `ingress[i]` or `egress[i]`. */
  rule: string;
  /** The rule's own name (ClusterNetworkPolicy rules may have one). */
  name?: string;
  action: 'Accept' | 'Deny' | 'Allow';
  tier?: 'Admin' | 'Baseline';
  priority?: number;
}

export interface TraceReport {
  /** The reference evaluator's verdict (contract: "allow" or "deny"). */
  verdict: 'allow' | 'deny';
  connection: { from: string; to: string; protocol: Protocol; port: number; family: 4 | 6 };
  src: ResolvedEndpoint;
  dst: ResolvedEndpoint;
  /** One line per direction, egress first: who judged, and why. */
  reasons: string[];
  egress: DirectionReport;
  ingress: DirectionReport;
  kernel: KernelAnswer;
  /** Whether the kernel's verdict matches the evaluator's (on egress only when only egress was judged here); null without a kernel verdict. */
  agree: boolean | null;
  warnings: string[];
}

export function parseEndpoint(s: string, flag: string): Endpoint {
  const ref = parsePodRef(s);
  if (ref) return { kind: 'pod', ...ref };
  if (tryParseIp(s.trim())) return { kind: 'ip', ip: s.trim() };
  throw new CtlError(`${flag}: expected NAMESPACE/POD or an IP address, got ${JSON.stringify(s)}`);
}

/** The rule that decided a direction: a ClusterNetworkPolicy Accept or Deny (a Pass only hands on), else the first NetworkPolicy rule that allows. */
export function decidingRule(d: DirectionVerdict): DecidingRule | undefined {
  const pick = (r: Reason): DecidingRule | undefined => {
    if (r.kind === 'metadata-guard') return { kind: 'MetadataGuard', policy: METADATA_GUARD_CHAIN, rule: 'egress', action: 'Deny' };
    if (r.kind === 'cluster-rule' && r.action !== 'Pass') {
      return {
        kind: 'ClusterNetworkPolicy',
        policy: formatPolicyRef(r.policy),
        rule: `${d.direction}[${r.rule}]`,
        ...(r.name !== undefined ? { name: r.name } : {}),
        action: r.action,
        tier: r.tier,
        priority: r.priority,
      };
    }
    if (r.kind === 'rule' && r.policy.kind === undefined)
      return { kind: 'NetworkPolicy', policy: formatPolicyRef(r.policy), rule: `${d.direction}[${r.rule}]`, action: 'Allow' };
    return undefined;
  };
  for (const r of d.reasons) {
    const x = pick(r);
    if (x) return x;
  }
  return undefined;
}

const dirReport = (d: DirectionVerdict): DirectionReport => {
  const decidedBy = decidingRule(d);
  return {
    subject: d.subject ? `${d.subject.namespace}/${d.subject.name}` : null,
    isolated: d.isolated,
    allowed: d.allowed,
    policies: d.policies.map((p) => `${p.namespace}/${p.name}`),
    reasons: d.reasons.map((r) => formatReason(r, d)),
    ...(d.clusterPolicies ? { clusterPolicies: d.clusterPolicies.map(formatPolicyRef), tier: d.tier ?? 'default' } : {}),
    ...(decidedBy ? { decidedBy } : {}),
  };
};

const reasonLine = (d: DirectionVerdict): string => {
  const who = d.subject ? `${d.subject.namespace}/${d.subject.name}` : '-';
  const tier = d.clusterPolicies ? ` [${d.tier !== undefined ? `${d.tier} tier` : 'default'}]` : '';
  return `${d.direction} at ${who}: ${d.allowed ? 'allowed' : 'denied'}${d.isolated ? ' (isolated)' : ''}${tier}: ${d.reasons.map((r) => formatReason(r, d)).join('; ')}`;
};

/** Agreement of the kernel's answer with the evaluator's verdict. */
export function agreement(v: Pick<Verdict, 'allowed'> & { egress: Pick<DirectionVerdict, 'allowed'> }, k: KernelAnswer): boolean | null {
  if (k.verdict === undefined) return null;
  const expected = k.scope === 'egress' ? v.egress.allowed : v.allowed;
  return (k.verdict === 'allow') === expected;
}

export function buildTrace(
  v: Verdict,
  conn: { from: string; to: string; protocol: Protocol; port: number },
  kernel: KernelAnswer,
  warnings: string[] = [],
): TraceReport {
  return {
    verdict: v.allowed ? 'allow' : 'deny',
    connection: { ...conn, family: v.family },
    src: v.src,
    dst: v.dst,
    reasons: [reasonLine(v.egress), reasonLine(v.ingress)],
    egress: dirReport(v.egress),
    ingress: dirReport(v.ingress),
    kernel,
    agree: agreement(v, kernel),
    warnings,
  };
}

export function formatTrace(r: TraceReport, v: Verdict | undefined, color: boolean): string {
  const out: string[] = [];
  out.push(paint("Reference evaluator (NetworkPolicy and ClusterNetworkPolicy semantics, from the agent's view of the cluster):", 'bold', color));
  if (v)
    out.push(
      formatVerdict(v, r.connection.protocol, r.connection.port).replace(
        /: (ALLOWED|DENIED)$/m,
        (_m, w: string) => `: ${paint(w, w === 'ALLOWED' ? 'green' : 'red', color)}`,
      ),
    );
  else out.push(`${formatEndpoint(r.src)} -> ${formatEndpoint(r.dst)}: ${r.verdict}`, ...r.reasons.map((x) => `  ${x}`));
  out.push('');
  const k = r.kernel;
  const kv = k.verdict === undefined ? 'no answer' : k.verdict === 'allow' ? paint('ALLOWED', 'green', color) : paint('DENIED', 'red', color);
  out.push(`${paint(`Kernel (${k.method}):`, 'bold', color)} ${kv}${k.scope === 'egress' ? ' (egress only)' : ''}`);
  out.push(`  ${k.detail}`);
  if (k.probe) out.push(`  probe at the source: ${k.probe}`);
  if (k.how) out.push(`  method: ${k.how}`);
  out.push('');
  if (r.agree === null) out.push('Agreement: not checked (no kernel verdict)');
  else
    out.push(
      r.agree
        ? paint('Agreement: the kernel agrees with the reference evaluator', 'green', color)
        : paint('DISAGREEMENT: the kernel and the reference evaluator differ', 'red', color),
    );
  for (const w of r.warnings) out.push(paint(`warning: ${w}`, 'yellow', color));
  return out.join('\n');
}

export interface TraceArgs {
  from: string;
  to: string;
  port: number;
  protocol: string;
}

/**
 * The evaluator's options for what this node's agent enforces: with
 * host-firewall mode on, traffic to a node or a hostNetwork pod is judged by
 * the NetworkPolicies and HostFirewallPolicies the host chains enforce, not
 * waved through as "not a pod".
 */
export function enforcedSemantics(status: Pick<AgentStatus, 'config' | 'hostFirewall'>): EvaluatorOptions {
  const hf = status.hostFirewall;
  if (!status.config.hostFirewall || !hf?.enabled) return {};
  return {
    hostFirewall: {
      audit: hf.audit,
      failsafeInbound: parsePortRanges(hf.failsafe.inbound),
      failsafeOutbound: parsePortRanges(hf.failsafe.outbound),
      hostNetworkEgress: hf.hostNetworkEgress?.enforced ?? false,
    },
  };
}

/** Whether the kernel of `node` sees only the egress half: the destination, pod or node, is elsewhere. */
export function egressOnly(v: Pick<Verdict, 'dst'>, node: string): boolean {
  return v.dst.kind !== 'external' && v.dst.node !== undefined && v.dst.node !== node;
}

export async function runTrace(ctx: Context, a: TraceArgs): Promise<CommandResult> {
  const protocol = a.protocol.toUpperCase() as Protocol;
  if (!['TCP', 'UDP', 'SCTP'].includes(protocol)) throw new CtlError(`--protocol must be TCP, UDP or SCTP, got ${JSON.stringify(a.protocol)}`);
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new CtlError(`--port must be 1-65535, got ${a.port}`);
  const src = parseEndpoint(a.from, '--from');
  const dst = parseEndpoint(a.to, '--to');
  const [state, status] = await Promise.all([ctx.state(), ctx.status()]);
  const { ok, errors } = usablePolicies(state.policies);
  const warnings = errors.map((e) => `${e.message}: left out of the evaluation (weir enforces it as deny-all for the pods it selects)`);
  let v: Verdict;
  try {
    const conn: Connection = { src, dst, protocol, port: a.port };
    const ev = new PolicyEvaluator({ ...state, policies: ok }, enforcedSemantics(status));
    // A ClusterNetworkPolicy weir cannot express is evaluated as it is enforced, "Deny all" for its subjects.
    warnings.push(...ev.clusterErrors.map((e) => `${e.message}: evaluated as "Deny all" for its subjects, as weir enforces it`));
    v = ev.evaluate(conn);
  } catch (e) {
    throw new CtlError((e as Error).message);
  }
  const kernel = await kernelAnswer(ctx, v, status.node, protocol, a.port);
  const report = buildTrace(v, { from: a.from, to: a.to, protocol, port: a.port }, kernel, warnings);
  return { json: report, text: formatTrace(report, v, ctx.opts.color) };
}

async function kernelAnswer(ctx: Context, v: Verdict, node: string, protocol: Protocol, port: number): Promise<KernelAnswer> {
  const unavailable = (detail: string): KernelAnswer => ({ method: 'unavailable', detail });
  if (v.src.kind !== 'pod') {
    return unavailable(
      `the source ${formatEndpoint(v.src)} is not a pod, so weirctl cannot send a probe from its network namespace; only the reference evaluator answers`,
    );
  }
  const key = `${v.src.pod.namespace}/${v.src.pod.name}`;
  if (v.src.node !== node)
    return unavailable(
      `the source pod ${key} runs on node ${v.src.node ?? '(unscheduled)'}, not on ${node}: run weirctl trace on node ${v.src.node ?? '?'}, where the source runs`,
    );
  if (v.dst.kind === 'pod' && v.dst.pod.namespace === v.src.pod.namespace && v.dst.pod.name === v.src.pod.name) {
    return unavailable("a pod's traffic to itself never leaves its network namespace, so no chain of the node sees it");
  }
  const rec = recordOfPod(ctx.records(), key);
  if (!rec) return unavailable(`pod ${key} has no IPAM record in ${ctx.store().dir}, so its host veth is unknown (see --data-dir and --network)`);
  const found = findPodNetns(vethOf(rec), rec.ifname);
  if (!found.netns) return unavailable(`cannot find the network namespace of pod ${key}: ${found.why}`);
  const scope = egressOnly(v, node) ? 'egress' : 'both';
  try {
    return await kernelTrace({ netns: found.netns, family: v.family, src: v.src.ip, dst: v.dst.ip, protocol, port, scope });
  } catch (e) {
    return { method: 'nftrace', detail: `the kernel trace failed: ${(e as Error).message}`, scope };
  } finally {
    found.netns.close();
  }
}
