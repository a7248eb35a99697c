// The judge: was a probe's outcome one the reference evaluator
// (src/policy/evaluator.ts, the oracle `weirctl trace` and the property
// tests use) allows, for some state the kernel may have been enforcing at
// that instant? Pure, given the timelines.
//
// The states: per kind, every version in force while the connect was under
// way (from its start to its verdict), and the earlier ones whose next
// change was not yet settled at its start (timeline.ts, candidatesIn);
// every combination of those. A connection that succeeded is
// forbidden only when no combination allows it: a change is given until
// every node's agent reports it applied (plus a grace), and at most
// maxSettleMs, before the state before it stops excusing a connection.
import { ipEndpoint, PolicyEvaluator, podEndpoint } from '../../src/policy/evaluator.ts';
import type { ClusterState, Namespace, NetworkPolicy, NodeInfo, Pod } from '../../src/policy/types.ts';
import { KINDS, type Kind, type KindTimeline, type KObject, objectKey, type SettleRules, type Version } from './timeline.ts';

export interface ProbeResult {
  /** The prober pod (namespace/name). */
  from: string;
  ip: string;
  port: number;
  /** When the connect started, ms since the epoch. */
  start: number;
  ms: number;
  connected: boolean;
  error?: string;
  /** Who answered a connection (the server's namespace/name), when it said. */
  who?: string;
}

/**
 * allowed-ok / blocked-ok: as every candidate state says; forbidden: it
 * connected though no candidate allows it (must never happen);
 * allowed-failed: every candidate allows it but it did not connect (a
 * prober or a pod not ready, a fault); unsettled: did not connect while the
 * candidates disagree; unjudged: the evaluator could not answer.
 */
export type Outcome = 'allowed-ok' | 'blocked-ok' | 'forbidden' | 'allowed-failed' | 'unsettled' | 'unjudged';

export interface Judgement {
  outcome: Outcome;
  /** The candidate versions' seqs per kind, and what the change after the oldest was. */
  states: number;
  /** Why, when there is something to say (an evaluator's or the probe's error may be missing). */
  detail?: string | undefined;
}

/** Evaluators by combination of versions: most probes share the one in force. */
export class EvaluatorCache {
  #cache = new Map<string, PolicyEvaluator | Error>();
  readonly #nodes: readonly NodeInfo[];
  constructor(nodes: readonly NodeInfo[]) {
    this.#nodes = nodes;
  }

  get(combo: Record<Kind, Version>): PolicyEvaluator | Error {
    const key = KINDS.map((k) => combo[k].seq).join('/');
    let ev = this.#cache.get(key);
    if (!ev) {
      const state: ClusterState = {
        pods: [...combo.pods.objects.values()] as Pod[],
        namespaces: [...combo.namespaces.objects.values()] as Namespace[],
        policies: [...combo.networkpolicies.objects.values()] as NetworkPolicy[],
        nodes: this.#nodes,
      };
      try {
        ev = new PolicyEvaluator(state);
      } catch (e) {
        ev = e instanceof Error ? e : new Error(String(e));
      }
      if (this.#cache.size > 256) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(key, ev);
    }
    return ev;
  }
}

/** Every combination of one version per kind (a product of short lists). */
export function combinations(cands: Record<Kind, Version[]>): Record<Kind, Version>[] {
  let out: Partial<Record<Kind, Version>>[] = [{}];
  for (const k of KINDS) out = out.flatMap((c) => cands[k].map((v) => ({ ...c, [k]: v })));
  return out as Record<Kind, Version>[];
}

type PodLike = KObject & { status?: { podIPs?: { ip: string }[] } };

const rvOf = (o: KObject | undefined): string => o?.metadata?.resourceVersion ?? '-';
const podsWithIp = (v: Version, ip: string): KObject[] => [...v.objects.values()].filter((o) => ((o as PodLike).status?.podIPs ?? []).some((x) => x.ip === ip));
export const podWithIp = (v: Version, ip: string): KObject | undefined => podsWithIp(v, ip)[0];

/**
 * The candidates of each kind reduced to those that can differ in their
 * verdict on one flow from a pod to an address. NetworkPolicy decides a
 * flow by the two pods (the source, and the pod holding the address), their
 * namespaces' labels and the policies of those namespaces; versions that
 * differ only elsewhere (most changes during a slow settle concern other
 * pods) give the same verdict, and only the newest of each such group is
 * kept. Namespaces are few and change rarely: all are kept.
 */
export function reduceCandidates(cands: Record<Kind, Version[]>, srcNs: string, srcName: string, ip: string): Record<Kind, Version[]> {
  const distinct = (vs: Version[], view: (v: Version) => string): Version[] => {
    const seen = new Set<string>();
    return vs.filter((v) => {
      const key = view(v);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  };
  const pods = distinct(cands.pods, (v) => {
    const dst = podWithIp(v, ip);
    return `${rvOf(v.objects.get(`${srcNs}/${srcName}`))}|${dst ? `${objectKey(dst)}@${rvOf(dst)}` : '-'}`;
  });
  const nss = new Set([srcNs, ...cands.pods.flatMap((v) => podWithIp(v, ip)?.metadata?.namespace ?? [])]);
  const networkpolicies = distinct(cands.networkpolicies, (v) =>
    [...v.objects.values()]
      .filter((o) => nss.has(o.metadata?.namespace ?? ''))
      .map((o) => `${objectKey(o)}@${rvOf(o)}`)
      .sort()
      .join(','),
  );
  return { pods, namespaces: cands.namespaces, networkpolicies };
}

const labelsOf = (o: KObject | undefined): string => JSON.stringify(o?.metadata?.labels ?? {});

/**
 * What a reader needs to tell a weir bug from a soak bug: the evaluator's
 * verdict per direction, the two pods and their namespaces' labels, and the
 * specs of the policies of those namespaces, in one state.
 */
function explain(c: Record<Kind, Version>, evaluators: EvaluatorCache, ns: string, name: string, p: ProbeResult): string {
  const ev = evaluators.get(c);
  if (ev instanceof Error) return ev.message;
  const v = ev.evaluate({ src: podEndpoint(ns, name), dst: ipEndpoint(p.ip), protocol: 'TCP', port: p.port });
  const dir = (d: typeof v.egress): string => `${d.allowed ? 'allows' : 'denies'} [${d.policies.map((x) => x.name).join(',')}] ${JSON.stringify(d.reasons)}`;
  const src = c.pods.objects.get(`${ns}/${name}`);
  const dst = podWithIp(c.pods, p.ip);
  const dstNs = dst?.metadata?.namespace ?? '';
  const nsLabels = [ns, dstNs].map((n) => `${n} ${labelsOf(c.namespaces.objects.get(n))}`).join(', ');
  const pols = [...c.networkpolicies.objects.values()]
    .filter((o) => [ns, dstNs].includes(o.metadata?.namespace ?? ''))
    .map((o) => `${objectKey(o)} ${JSON.stringify(o.spec)}`);
  const dstDesc = dst
    ? `${objectKey(dst)} ${labelsOf(dst)}${dst.metadata?.deletionTimestamp ? ' (terminating)' : ''} on ${(dst.spec as { nodeName?: string } | undefined)?.nodeName ?? '?'}`
    : 'no pod';
  return `egress ${dir(v.egress)}; ingress ${dir(v.ingress)}; src ${ns}/${name} ${labelsOf(src)}; dst ${dstDesc}; namespaces ${nsLabels}; policies ${pols.join(' ') || 'none'}`;
}

/** undefined while some candidate is not settled yet (judge later). */
export function judge(
  p: ProbeResult,
  timelines: Record<Kind, KindTimeline>,
  evaluators: EvaluatorCache,
  now: number,
  rules: SettleRules,
): Judgement | undefined {
  const cands = {} as Record<Kind, Version[]>;
  for (const k of KINDS) {
    const c = timelines[k].candidatesIn(p.start, p.start + p.ms, now, rules);
    if (c === undefined) return undefined;
    if (c.length === 0) return { outcome: 'unjudged', states: 0, detail: `no ${k} known at the probe's start` };
    cands[k] = c;
  }
  const [ns, name] = p.from.split('/') as [string, string];
  // A connection that reached a pod the API never gave the address to (in
  // any candidate state) is wrong whatever policy says: two pods answer
  // for one address, or a route points at a pod that is gone.
  if (p.connected && p.who && !cands.pods.some((v) => podsWithIp(v, p.ip).some((o) => objectKey(o) === p.who))) {
    const holders = [...new Set(cands.pods.flatMap((v) => podsWithIp(v, p.ip).map(objectKey)))];
    return { outcome: 'forbidden', states: cands.pods.length, detail: `answered by ${p.who}, but the API gave ${p.ip} to ${holders.join(', ') || 'no pod'}` };
  }
  const combos = combinations(reduceCandidates(cands, ns, name, p.ip));
  let allowed = 0;
  const errors: string[] = [];
  for (const c of combos) {
    const ev = evaluators.get(c);
    if (ev instanceof Error) {
      errors.push(ev.message);
      continue;
    }
    try {
      if (ev.evaluate({ src: podEndpoint(ns, name), dst: ipEndpoint(p.ip), protocol: 'TCP', port: p.port }).allowed) allowed++;
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  const judged = combos.length - errors.length;
  if (judged === 0) return { outcome: 'unjudged', states: combos.length, detail: errors[0] };
  const states = combos.length;
  const describe = (): string =>
    `evaluator forbids it in every candidate state [${KINDS.map((k) => `${k}: ${cands[k].map((v) => `v${v.seq} (${v.change})`).join(' | ')}`).join('; ')}; in the newest: ${explain(combos[0] as Record<Kind, Version>, evaluators, ns, name, p)}]`;
  if (p.connected) return allowed > 0 ? { outcome: 'allowed-ok', states } : { outcome: 'forbidden', states, detail: describe() };
  if (allowed === judged && errors.length === 0) return { outcome: 'allowed-failed', states, detail: p.error };
  return allowed === 0 ? { outcome: 'blocked-ok', states } : { outcome: 'unsettled', states };
}
