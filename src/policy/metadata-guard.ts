// The cloud metadata guard: pods do not reach the instance metadata service
// (169.254.169.254, and fd00:ec2::254 over IPv6) unless they are meant to.
// The service answers with the node's identity and credentials, which a pod
// should not borrow by default. On unless the agent runs with
// --metadata-guard=false. Pure: the compiler (compile.ts) and the reference
// evaluator (evaluator.ts) both decide who is exempt here.
//
// A local pod is exempt, per address family, when
// - it, or its namespace, carries the opt-in label
//   (--metadata-guard-optin-label, `key` or `key=value`), or
// - an egress rule that selects it names the family's metadata address
//   explicitly: a NetworkPolicy ipBlock, or a ClusterNetworkPolicy Accept
//   rule's `networks`, whose CIDR is exactly that address (/32, /128).
//   A wider CIDR that happens to contain it (169.254.0.0/16, 0.0.0.0/0) does
//   not count: allowing "the internet" must not hand out the node's
//   credentials. Deny and Pass rules exempt nobody.
// An exempt pod's traffic to the address then meets the tiers and
// NetworkPolicy like any other (the rule that exempted it still has its
// ports, and a NetworkPolicy isolating the pod still needs a rule that
// allows it). Everyone else's is dropped before any of them: the guard
// comes first in the chain order, ahead of the Admin tier.
//
// In the table: `metadata_guard`, a base chain on the prerouting hook (after
// kube-proxy's DNAT, so a Service pointing at the address is caught too),
// sends every packet for the address whose source is not in
// @metadata_ok4/@metadata_ok6 to `metadata_deny`, which logs it with the
// prefix `weir deny eg metadata-guard: ` and drops it. Prerouting sees what
// pods send whether the address is beyond the node (forward) or on the node
// itself (input); what the node sends itself (hostNetwork pods included)
// takes the output hook and is not judged, and when it is for one of the
// node's own addresses it comes back in on `lo`, which the guard lets by. It judges every packet, not only
// new connections: when a pod stops being exempt, its open connections to
// the address end at their next packet, as a purge after a policy change
// would end them.
import { type IpFamily, tryParseIp } from '../ip.ts';
import type { ClusterIndex } from './cluster-index.ts';
import type { NormalizedClusterPolicy } from './cnp-normalize.ts';
import type { NormalizedPolicy } from './normalize.ts';
import { addrType, FAMILIES, fam } from './rule-compile.ts';
import type { RulesetBuilder } from './ruleset.ts';
import { selectorMatches } from './selector.ts';
import type { Labels } from './types.ts';

/** The metadata service's address per family (AWS, GCP, Azure and others use 169.254.169.254; AWS's IPv6 endpoint is fd00:ec2::254). */
export const METADATA_ADDRESSES: Readonly<Record<IpFamily, string>> = { 4: '169.254.169.254', 6: 'fd00:ec2::254' };

/** The opt-in label the agent uses unless told otherwise. */
export const DEFAULT_METADATA_OPTIN_LABEL = 'weir.dev/metadata-access=true';

/** The name the drop log and weirctl give the guard's denials. */
export const METADATA_GUARD_CHAIN = 'metadata-guard';

export interface MetadataGuardOptions {
  /** Pods or namespaces carrying this label are exempt: `key` (any value) or `key=value`; absent: no label exempts. */
  readonly optInLabel?: string;
}

/** The guard as the compiler and the evaluator take it: absent means on with the default label, false means off. */
export type MetadataGuardSetting = MetadataGuardOptions | false | undefined;

/** The options in force for a setting (undefined: the guard is off). */
export function guardOptions(setting: MetadataGuardSetting): MetadataGuardOptions | undefined {
  if (setting === false) return undefined;
  return setting ?? { optInLabel: DEFAULT_METADATA_OPTIN_LABEL };
}

/** Throws unless `spec` is empty, a label key, or `key=value` (the forms --metadata-guard-optin-label takes). */
export function checkOptInLabel(spec: string | undefined): void {
  if (!spec) return;
  if (!/^(?:[a-z0-9.-]+\/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(?:=(?:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?)?$/.test(spec)) {
    throw new Error(`--metadata-guard-optin-label must be a label key or key=value, got ${JSON.stringify(spec)}`);
  }
}

/** Whether `labels` carry the opt-in label `spec` (`key` or `key=value`). */
export function hasOptInLabel(spec: string | undefined, labels: Labels): boolean {
  if (!spec) return false;
  const eq = spec.indexOf('=');
  if (eq < 0) return Object.hasOwn(labels, spec);
  return labels[spec.slice(0, eq)] === spec.slice(eq + 1);
}

/** The family whose metadata address `cidr` names exactly, if any. */
function namedFamily(cidr: { family: IpFamily; prefix: number; bytes: Uint8Array }): IpFamily | undefined {
  if (cidr.prefix !== (cidr.family === 4 ? 32 : 128)) return undefined;
  const target = tryParseIp(METADATA_ADDRESSES[cidr.family]);
  return target?.bytes.every((b, i) => b === cidr.bytes[i]) ? cidr.family : undefined;
}

/** The families whose metadata address an egress rule of this NetworkPolicy names. */
export function networkPolicyNames(p: NormalizedPolicy): IpFamily[] {
  const out = new Set<IpFamily>();
  for (const r of p.egress ?? []) {
    if (r.peers === 'any') continue;
    for (const x of r.peers) {
      const f = x.kind === 'ipBlock' ? namedFamily(x.cidr) : undefined;
      if (f) out.add(f);
    }
  }
  return [...out];
}

/** The families whose metadata address an egress Accept rule of this ClusterNetworkPolicy names. */
export function clusterPolicyNames(p: NormalizedClusterPolicy): IpFamily[] {
  const out = new Set<IpFamily>();
  for (const r of p.egress) {
    if (r.action !== 'Accept' || r.peers === 'any') continue;
    for (const x of r.peers) {
      const f = x.kind === 'ipBlock' ? namedFamily(x.cidr) : undefined;
      if (f) out.add(f);
    }
  }
  return [...out];
}

/** What makes one pod exempt: its labels, its namespace's, and the egress policies of either kind that select it. */
export interface GuardSubject {
  readonly labels: Labels;
  readonly nsLabels: Labels;
  readonly networkPolicies: readonly NormalizedPolicy[];
  readonly clusterPolicies: readonly NormalizedClusterPolicy[];
}

/** The families in which a pod may reach the metadata address past the guard. */
export function exemptFamilies(opts: MetadataGuardOptions, s: GuardSubject): Set<IpFamily> {
  if (hasOptInLabel(opts.optInLabel, s.labels) || hasOptInLabel(opts.optInLabel, s.nsLabels)) return new Set(FAMILIES);
  return new Set([...s.networkPolicies.flatMap(networkPolicyNames), ...s.clusterPolicies.flatMap(clusterPolicyNames)]);
}

/** The addresses of this node's exempt pods, per family (a compile's input to compileMetadataGuard). */
export function exemptAddresses(opts: MetadataGuardOptions, idx: ClusterIndex): Map<IpFamily, string[]> {
  // Policies naming the address are rare: only they are matched against each pod.
  const nps = idx.policies.filter((p) => networkPolicyNames(p).length > 0);
  const cnps = idx.clusterPolicies.filter((p) => clusterPolicyNames(p).length > 0);
  const out = new Map<IpFamily, string[]>();
  for (const pod of [...idx.local.values()].flat()) {
    const nsLabels = idx.nsLabels(pod.namespace);
    const families = exemptFamilies(opts, {
      labels: pod.labels,
      nsLabels,
      networkPolicies: nps.filter((p) => p.namespace === pod.namespace && selectorMatches(p.podSelector, pod.labels)),
      clusterPolicies: cnps.filter((p) => selectorMatches(p.subject.namespaces, nsLabels) && selectorMatches(p.subject.pods, pod.labels)),
    });
    for (const [f, ip] of pod.ips) if (families.has(f)) out.set(f, [...(out.get(f) ?? []), ip]);
  }
  return out;
}

/** Whether `ip` (canonical text) is a metadata address. */
export const isMetadataAddress = (ip: string): boolean => ip === METADATA_ADDRESSES[4] || ip === METADATA_ADDRESSES[6];

export interface GuardLog {
  readonly group: number;
  readonly rate: string;
  readonly burst: number;
}

/** The guard's sets, chains and rules; `exempt` are the addresses of the exempt local pods, per family. */
export function compileMetadataGuard(b: RulesetBuilder, exempt: ReadonlyMap<IpFamily, readonly string[]>, log: GuardLog): void {
  for (const f of FAMILIES) {
    b.set(`metadata_ok${f}`, addrType(f), undefined, 'local pods that may reach the cloud metadata service');
    for (const ip of exempt.get(f) ?? []) b.element(`metadata_ok${f}`, [ip]);
  }
  const deny = b.chain('metadata_deny', undefined, 'the metadata guard: a pod not exempt, to the cloud metadata service');
  b.rule(deny, `limit rate ${log.rate} burst ${log.burst} packets log prefix "weir deny eg ${METADATA_GUARD_CHAIN}: " group ${log.group}`);
  b.rule(deny, 'counter drop', 'metadata guard: no opt-in label, no policy naming the address');
  const chain = b.chain(
    'metadata_guard',
    { type: 'filter', hook: 'prerouting', priority: 0, policy: 'accept' },
    'the cloud metadata service, reachable only by pods exempt from the guard',
  );
  b.rule(chain, 'iif "lo" accept', "the node's own traffic to its own addresses");
  for (const f of FAMILIES) {
    b.rule(chain, `${fam(f)} daddr ${METADATA_ADDRESSES[f]} ${fam(f)} saddr != @metadata_ok${f} goto metadata_deny`, 'metadata guard');
  }
}
