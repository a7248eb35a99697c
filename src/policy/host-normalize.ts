// HostFirewallPolicy (weir.dev/v1alpha1, cluster-scoped): validation and
// normalization into the rule form the compiler and the evaluator share with
// NetworkPolicy; the failsafe port lists; the ports a hostNetwork pod
// declares. Pure. The semantics are documented in host-compile.ts.
//
// As with NetworkPolicy, a policy is understood whole or refused whole
// (PolicyError naming the policy and the field); a refused policy is
// enforced fail-closed (failClosedHostPolicy). The CRD's OpenAPI schema
// (deploy/parts/05-crd-hostfirewallpolicy.yaml) makes the API server refuse
// most of these errors before weir sees them; this is the second line.
import { PolicyError, type PolicyRef, show } from './errors.ts';
import { effectivePolicyTypes, type NormalizedPeer, normalizeIpBlock, normalizeRules } from './normalize.ts';
import type { PortMatch } from './ports.ts';
import { type CompiledSelector, compileOptionalSelector, compileSelector, EVERYTHING } from './selector.ts';
import type { HostFirewallMode, HostFirewallPolicy, LabelSelector, Pod, PolicyType, Protocol } from './types.ts';

export const HFP_GROUP = 'weir.dev';
export const HFP_VERSION = 'v1alpha1';
export const HFP_KIND = 'HostFirewallPolicy';
export const HFP_PLURAL = 'hostfirewallpolicies';
/** The API path the agent lists and watches. */
export const HFP_PATH = `/apis/${HFP_GROUP}/${HFP_VERSION}/${HFP_PLURAL}`;

/** Nodes picked by a node selector: their InternalIPs (a HostFirewallPolicy peer). */
export interface NodePeer {
  readonly kind: 'nodes';
  readonly nodes: CompiledSelector;
}

export type HostPeer = NormalizedPeer | NodePeer;

export interface HostRule {
  readonly index: number;
  readonly peers: readonly HostPeer[] | 'any';
  readonly ports: readonly PortMatch[] | 'any';
}

export interface NormalizedHostPolicy {
  readonly name: string;
  readonly uid: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly nodeSelector: CompiledSelector;
  readonly mode: HostFirewallMode;
  readonly policyTypes: readonly PolicyType[];
  /** Present exactly when the policy affects ingress; `[]` denies all ingress (failsafes excepted). */
  readonly ingress: readonly HostRule[] | undefined;
  readonly egress: readonly HostRule[] | undefined;
  readonly warnings: readonly string[];
}

export const hostPolicyRef = (name: string): PolicyRef => ({ namespace: '', name, kind: 'HostFirewallPolicy' });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): v is null | undefined => v === undefined || v === null;

/** Validates and normalizes one HostFirewallPolicy; throws PolicyError on anything it cannot express. */
export function normalizeHostPolicy(hp: HostFirewallPolicy): NormalizedHostPolicy {
  const meta: unknown = hp?.metadata;
  const nm = isObject(meta) ? meta.name : undefined;
  if (typeof nm !== 'string' || nm === '') throw new PolicyError('metadata.name', `must be a non-empty string, got ${show(nm)}`);
  const ref = hostPolicyRef(nm);
  const fail = (field: string, problem: string): never => {
    throw new PolicyError(field, problem, ref);
  };
  const m = meta as Record<string, unknown>;
  const specRaw: unknown = hp.spec;
  if (!isObject(specRaw)) return fail('spec', `must be an object, got ${show(specRaw)}`);
  const spec = specRaw;

  // Required, like the CRD says: a policy for "every node" must say `{}`.
  if (absent(spec.nodeSelector)) fail('spec.nodeSelector', 'is required ({} selects every node)');
  const nodeSelector = compileSelector(spec.nodeSelector as LabelSelector, 'spec.nodeSelector', ref);
  const modeRaw = spec.mode ?? 'Enforce';
  if (modeRaw !== 'Enforce' && modeRaw !== 'Audit') fail('spec.mode', `must be Enforce or Audit, got ${show(spec.mode)}`);
  const types = effectivePolicyTypes(spec, fail);
  const peerOf = (p: unknown, at: string): HostPeer => hostPeer(p, at, ref, fail);
  const ingressRules: HostRule[] = normalizeRules(spec.ingress, 'ingress', peerOf, fail);
  const egressRules: HostRule[] = normalizeRules(spec.egress, 'egress', peerOf, fail);
  const hasIngress = types.includes('Ingress');
  const hasEgress = types.includes('Egress');
  const warnings: string[] = [];
  if (!hasIngress && ingressRules.length > 0) warnings.push('spec.ingress has no effect: spec.policyTypes does not include Ingress');
  if (!hasEgress && egressRules.length > 0) warnings.push('spec.egress has no effect: spec.policyTypes does not include Egress');
  return {
    name: nm,
    uid: typeof m.uid === 'string' ? m.uid : undefined,
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : undefined,
    nodeSelector,
    mode: modeRaw as HostFirewallMode,
    policyTypes: types,
    ingress: hasIngress ? ingressRules : undefined,
    egress: hasEgress ? egressRules : undefined,
    warnings,
  };
}

function hostPeer(raw: unknown, at: string, ref: PolicyRef, fail: (f: string, p: string) => never): HostPeer {
  if (!isObject(raw)) return fail(at, `must be a peer object, got ${show(raw)}`);
  const hasPods = !absent(raw.podSelector);
  const hasNs = !absent(raw.namespaceSelector);
  const hasIp = !absent(raw.ipBlock);
  const hasNodes = !absent(raw.nodeSelector);
  if ([hasIp, hasNodes, hasPods || hasNs].filter(Boolean).length > 1)
    fail(at, 'must specify exactly one of ipBlock, nodeSelector, or namespaceSelector/podSelector');
  if (hasIp) return normalizeIpBlock(raw.ipBlock, `${at}.ipBlock`, fail);
  if (hasNodes) return { kind: 'nodes', nodes: compileSelector(raw.nodeSelector as LabelSelector, `${at}.nodeSelector`, ref) };
  if (!hasPods && !hasNs) return fail(at, 'must specify a peer (ipBlock, nodeSelector, namespaceSelector or podSelector)');
  // Cluster-scoped: there is no "own namespace", so podSelector alone means
  // those pods in every namespace; namespaceSelector alone, every pod there.
  const pods = hasPods ? compileSelector(raw.podSelector as LabelSelector, `${at}.podSelector`, ref) : compileOptionalSelector(undefined, 'everything');
  const namespaces = hasNs ? compileSelector(raw.namespaceSelector as LabelSelector, `${at}.namespaceSelector`, ref) : EVERYTHING;
  return { kind: 'pods', namespaces, pods };
}

/**
 * A HostFirewallPolicy weir cannot express is enforced as deny-all, in the
 * directions it would cover, on the nodes it would select (every node when
 * even its nodeSelector is unusable). Failsafe ports stay open.
 */
export function failClosedHostPolicy(hp: HostFirewallPolicy): NormalizedHostPolicy {
  const spec = (isObject(hp?.spec) ? hp.spec : {}) as Record<string, unknown>;
  let nodeSelector: CompiledSelector = EVERYTHING;
  try {
    nodeSelector = compileSelector((spec.nodeSelector ?? {}) as LabelSelector, 'spec.nodeSelector');
  } catch {
    // keep EVERYTHING
  }
  let types: PolicyType[] = ['Ingress', 'Egress'];
  try {
    types = effectivePolicyTypes(spec);
  } catch {
    // keep both
  }
  return {
    name: typeof hp?.metadata?.name === 'string' ? hp.metadata.name : '',
    uid: hp?.metadata?.uid,
    resourceVersion: hp?.metadata?.resourceVersion,
    nodeSelector,
    // Never weaker than asked: a broken policy that said Audit still only audits.
    mode: spec.mode === 'Audit' ? 'Audit' : 'Enforce',
    policyTypes: types,
    ingress: types.includes('Ingress') ? [] : undefined,
    egress: types.includes('Egress') ? [] : undefined,
    warnings: [],
  };
}

/** Normalizes every policy, fail-closed for the ones that cannot be expressed; sorted by name. */
export function normalizeHostPolicies(list: readonly HostFirewallPolicy[]): { policies: NormalizedHostPolicy[]; errors: PolicyError[] } {
  const policies: NormalizedHostPolicy[] = [];
  const errors: PolicyError[] = [];
  for (const hp of list) {
    try {
      policies.push(normalizeHostPolicy(hp));
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      errors.push(e);
      policies.push(failClosedHostPolicy(hp));
    }
  }
  policies.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { policies, errors };
}

// ---- failsafe ports ----

export type L4Protocol = 'tcp' | 'udp' | 'sctp';

/** `tcp:22`, `udp:67-68`: a protocol and a port range. */
export interface PortRange {
  readonly protocol: L4Protocol;
  readonly from: number;
  readonly to: number;
}

/** Inbound: SSH, kube-apiserver, kubelet, etcd, DHCP (v4 server/client, v6 client/server). */
export const DEFAULT_FAILSAFE_INBOUND = 'tcp:22,tcp:6443,tcp:10250,tcp:2379-2380,udp:67-68,udp:546-547';
/** Outbound: DNS, kube-apiserver, etcd, DHCP. */
export const DEFAULT_FAILSAFE_OUTBOUND = 'tcp:53,udp:53,tcp:6443,tcp:2379-2380,udp:67-68,udp:546-547';

/** Parses `proto:port[-port]` items, comma-separated or as a list; `''` / `none` is the empty list. Throws RangeError. */
export function parsePortRanges(spec: string | readonly string[]): PortRange[] {
  const items = (typeof spec === 'string' ? [spec] : spec)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'none');
  return items.map((item) => {
    const m = /^(tcp|udp|sctp):(\d{1,5})(?:-(\d{1,5}))?$/i.exec(item);
    if (!m) throw new RangeError(`bad port ${JSON.stringify(item)}: expected proto:port or proto:from-to, proto one of tcp, udp, sctp`);
    const from = Number(m[2]);
    const to = m[3] === undefined ? from : Number(m[3]);
    if (from < 1 || to > 65535 || to < from) throw new RangeError(`bad port range ${JSON.stringify(item)}: 1-65535, from <= to`);
    return { protocol: (m[1] as string).toLowerCase() as L4Protocol, from, to };
  });
}

export const formatPortRange = (r: PortRange): string => `${r.protocol}:${r.from === r.to ? r.from : `${r.from}-${r.to}`}`;

export function portRangesContain(list: readonly PortRange[], protocol: Protocol | L4Protocol, port: number): boolean {
  const p = protocol.toLowerCase();
  return list.some((r) => r.protocol === p && port >= r.from && port <= r.to);
}

// ---- the ports a hostNetwork pod declares ----

/**
 * containerPort and hostPort of every container port of the pod's
 * containers and sidecars, per protocol (TCP by default), deduplicated and
 * sorted. For a hostNetwork pod they are ports of the node itself.
 */
export function declaredPorts(pod: Pod | undefined): { protocol: Protocol; port: number }[] {
  const seen = new Set<string>();
  const out: { protocol: Protocol; port: number }[] = [];
  const sidecars = (pod?.spec?.initContainers ?? []).filter((c) => c?.restartPolicy === 'Always');
  for (const c of [...(pod?.spec?.containers ?? []), ...sidecars]) {
    for (const p of c?.ports ?? []) {
      const protocol = (p?.protocol ?? 'TCP') as Protocol;
      if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') continue;
      for (const port of [p?.containerPort, p?.hostPort]) {
        if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
        const k = `${protocol}/${port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push({ protocol, port });
      }
    }
  }
  return out.sort((a, b) => (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : a.port - b.port));
}
