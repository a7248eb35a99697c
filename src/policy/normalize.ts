// Validation and normalization of networking.k8s.io/v1 NetworkPolicy into the
// form the evaluator (and later the nftables compiler) works from. Every
// defaulting rule of the API is applied here, once, and anything that cannot
// be expressed exactly throws PolicyError naming the policy and the field:
// a policy is either understood whole or refused whole, never trimmed.
import { type Cidr, type IpBytes, tryParseCidr } from '../ip.ts';
import { cidrHolds, cidrInside, cidrNetwork } from '../ip-ranges.ts';
import { PolicyError, type PolicyRef, show } from './errors.ts';
import type { PortMatch } from './ports.ts';
import { type CompiledSelector, compileOptionalSelector, compileSelector } from './selector.ts';
import type { LabelSelector, NetworkPolicy, PolicyType, Protocol } from './types.ts';

export type Direction = 'ingress' | 'egress';

/** Pods selected by a peer: `namespaces` is `'own'` for the policy's namespace, else a namespace selector. */
export interface PodPeer {
  readonly kind: 'pods';
  readonly namespaces: 'own' | CompiledSelector;
  readonly pods: CompiledSelector;
}

/** Addresses in `cidr` (host bits cleared) but in none of `except`, all of one family. */
export interface IpBlockPeer {
  readonly kind: 'ipBlock';
  readonly cidr: Cidr;
  readonly except: readonly Cidr[];
}

export type NormalizedPeer = PodPeer | IpBlockPeer;

export interface NormalizedRule {
  /** Index of the rule in spec.ingress / spec.egress, for explanations. */
  readonly index: number;
  /** `'any'`: the rule has no from/to (or an empty list), so every peer, pod or not, matches. */
  readonly peers: readonly NormalizedPeer[] | 'any';
  /** `'any'`: the rule has no ports (or an empty list), so every port of every protocol matches. */
  readonly ports: readonly PortMatch[] | 'any';
}

export interface NormalizedPolicy {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly resourceVersion: string | undefined;
  /** Selects the policy's subjects, among pods of `namespace` only. */
  readonly podSelector: CompiledSelector;
  /** Effective policy types after defaulting, in the order Ingress, Egress. */
  readonly policyTypes: readonly PolicyType[];
  /** Present exactly when the policy affects ingress; `[]` denies all ingress. */
  readonly ingress: readonly NormalizedRule[] | undefined;
  /** Present exactly when the policy affects egress; `[]` denies all egress. */
  readonly egress: readonly NormalizedRule[] | undefined;
  /** Parts that are valid but have no effect (e.g. egress rules when policyTypes is [Ingress]). */
  readonly warnings: readonly string[];
}

const PROTOCOLS: ReadonlySet<string> = new Set<Protocol>(['TCP', 'UDP', 'SCTP']);
const POLICY_TYPES: ReadonlySet<string> = new Set<PolicyType>(['Ingress', 'Egress']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): v is null | undefined => v === undefined || v === null;

/**
 * Effective policyTypes. Why this rule: the API server defaults an empty
 * policyTypes to [Ingress], plus Egress only when spec.egress has at least one
 * rule; so `egress: []` without policyTypes does NOT isolate for egress, and
 * a deny-all-egress policy must say policyTypes: [Egress] explicitly.
 */
export function effectivePolicyTypes(
  spec: { policyTypes?: unknown; egress?: unknown } | undefined,
  fail?: (field: string, problem: string) => never,
): PolicyType[] {
  const raw = spec?.policyTypes;
  const err =
    fail ??
    ((f: string, p: string): never => {
      throw new PolicyError(f, p);
    });
  if (!absent(raw)) {
    if (!Array.isArray(raw)) err('spec.policyTypes', `must be a list, got ${show(raw)}`);
    const list = raw as unknown[];
    if (list.length > 2) err('spec.policyTypes', `may not have more than two entries, got ${show(list)}`);
    list.forEach((t, i) => {
      if (typeof t !== 'string' || !POLICY_TYPES.has(t)) err(`spec.policyTypes[${i}]`, `must be Ingress or Egress, got ${show(t)}`);
    });
    if (list.length > 0) return (['Ingress', 'Egress'] as const).filter((t) => list.includes(t));
  }
  const egress = spec?.egress;
  return Array.isArray(egress) && egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

/** Validates and normalizes one NetworkPolicy; throws PolicyError on anything it cannot express. */
export function normalizePolicy(np: NetworkPolicy): NormalizedPolicy {
  const meta: unknown = np?.metadata;
  const ns = isObject(meta) ? meta.namespace : undefined;
  const nm = isObject(meta) ? meta.name : undefined;
  if (typeof ns !== 'string' || ns === '') throw new PolicyError('metadata.namespace', `must be a non-empty string, got ${show(ns)}`);
  if (typeof nm !== 'string' || nm === '') throw new PolicyError('metadata.name', `must be a non-empty string, got ${show(nm)}`);
  const ref: PolicyRef = { namespace: ns, name: nm };
  const fail = (field: string, problem: string): never => {
    throw new PolicyError(field, problem, ref);
  };
  const m = meta as Record<string, unknown>;

  const specRaw: unknown = np.spec;
  // The API server always serves a spec; an absent one is the zero spec.
  if (!absent(specRaw) && !isObject(specRaw)) fail('spec', `must be an object, got ${show(specRaw)}`);
  const spec = (specRaw ?? {}) as Record<string, unknown>;

  // Why 'everything': the v1 reference says podSelector "is optional. If it is
  // not specified, it defaults to an empty selector" (all pods of the namespace).
  const podSelector = compileOptionalSelector(spec.podSelector as LabelSelector | undefined, 'everything', 'spec.podSelector', ref);
  const types = effectivePolicyTypes(spec, fail);

  const warnings: string[] = [];
  const peerOf = (p: unknown, at: string): NormalizedPeer => peer(p, at, ref, fail);
  const ingressRules: NormalizedRule[] = normalizeRules(spec.ingress, 'ingress', peerOf, fail);
  const egressRules: NormalizedRule[] = normalizeRules(spec.egress, 'egress', peerOf, fail);
  const hasIngress = types.includes('Ingress');
  const hasEgress = types.includes('Egress');
  // Valid but inert: the API keeps these sections, but policyTypes decides
  // which directions the policy governs. Reported, so nothing vanishes silently.
  if (!hasIngress && ingressRules.length > 0) warnings.push('spec.ingress has no effect: spec.policyTypes does not include Ingress');
  if (!hasEgress && egressRules.length > 0) warnings.push('spec.egress has no effect: spec.policyTypes does not include Egress');

  return {
    namespace: ns,
    name: nm,
    uid: typeof m.uid === 'string' ? m.uid : undefined,
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : undefined,
    podSelector,
    policyTypes: types,
    ingress: hasIngress ? ingressRules : undefined,
    egress: hasEgress ? egressRules : undefined,
    warnings,
  };
}

/**
 * The rules of one direction, with their peers normalized by `peerOf`
 * (NetworkPolicy peers here; HostFirewallPolicy adds node peers).
 */
export function normalizeRules<P>(
  raw: unknown,
  dir: Direction,
  peerOf: (p: unknown, at: string) => P,
  fail: (f: string, p: string) => never,
): Array<{ index: number; peers: P[] | 'any'; ports: PortMatch[] | 'any' }> {
  if (absent(raw)) return [];
  if (!Array.isArray(raw)) fail(`spec.${dir}`, `must be a list, got ${show(raw)}`);
  const peerKey = dir === 'ingress' ? 'from' : 'to';
  return (raw as unknown[]).map((r, index) => {
    const at = `spec.${dir}[${index}]`;
    if (!isObject(r)) fail(at, `must be a rule object, got ${show(r)}`);
    const rule = r as Record<string, unknown>;
    const peersRaw = rule[peerKey];
    const portsRaw = rule.ports;
    if (!absent(peersRaw) && !Array.isArray(peersRaw)) fail(`${at}.${peerKey}`, `must be a list, got ${show(peersRaw)}`);
    if (!absent(portsRaw) && !Array.isArray(portsRaw)) fail(`${at}.ports`, `must be a list, got ${show(portsRaw)}`);
    const peerList = (peersRaw ?? []) as unknown[];
    const portList = (portsRaw ?? []) as unknown[];
    // Why empty == absent: the API says "If this field is empty or missing,
    // this rule matches all" sources/destinations (and likewise all ports).
    return {
      index,
      peers: peerList.length === 0 ? 'any' : peerList.map((p, i) => peerOf(p, `${at}.${peerKey}[${i}]`)),
      ports: portList.length === 0 ? 'any' : portList.map((p, i) => normalizePort(p, `${at}.ports[${i}]`, fail)),
    };
  });
}

function peer(raw: unknown, at: string, ref: PolicyRef, fail: (f: string, p: string) => never): NormalizedPeer {
  if (!isObject(raw)) return fail(at, `must be a peer object, got ${show(raw)}`);
  const hasPods = !absent(raw.podSelector);
  const hasNs = !absent(raw.namespaceSelector);
  const hasIp = !absent(raw.ipBlock);
  if (hasIp) {
    if (hasPods || hasNs) fail(at, 'may not specify both ipBlock and another peer');
    return normalizeIpBlock(raw.ipBlock, `${at}.ipBlock`, fail);
  }
  if (!hasPods && !hasNs) fail(at, 'must specify a peer (podSelector, namespaceSelector or ipBlock)');
  // Why: podSelector alone means pods of the policy's own namespace;
  // namespaceSelector alone means every pod of the selected namespaces (an
  // empty one selects all namespaces); both in one peer are ANDed.
  const pods = hasPods ? compileSelector(raw.podSelector as LabelSelector, `${at}.podSelector`, ref) : compileOptionalSelector(undefined, 'everything');
  const namespaces = hasNs ? compileSelector(raw.namespaceSelector as LabelSelector, `${at}.namespaceSelector`, ref) : 'own';
  return { kind: 'pods', namespaces, pods };
}

/** Validates one ipBlock (shared with HostFirewallPolicy peers). */
export function normalizeIpBlock(raw: unknown, at: string, fail: (f: string, p: string) => never): IpBlockPeer {
  if (!isObject(raw)) return fail(at, `must be an object, got ${show(raw)}`);
  if (typeof raw.cidr !== 'string' || raw.cidr === '') return fail(`${at}.cidr`, `must be a CIDR, got ${show(raw.cidr)}`);
  const parsed = tryParseCidr(raw.cidr);
  // Refused rather than guessed: e.g. `010.0.0.0/8`, which some parsers read as octal.
  if (!parsed) return fail(`${at}.cidr`, `not a valid CIDR: ${show(raw.cidr)}`);
  // Why mask: the API accepts host bits ("192.168.1.1/24" is its own example)
  // and means the whole network.
  const cidr = cidrNetwork(parsed);
  const exceptRaw = raw.except;
  if (!absent(exceptRaw) && !Array.isArray(exceptRaw)) fail(`${at}.except`, `must be a list, got ${show(exceptRaw)}`);
  const except = ((exceptRaw ?? []) as unknown[]).map((e, i) => {
    const eat = `${at}.except[${i}]`;
    const ex = typeof e === 'string' ? tryParseCidr(e) : undefined;
    if (!ex) return fail(eat, `not a valid CIDR: ${show(e)}`);
    if (ex.family !== cidr.family) return fail(eat, `${show(e)} is IPv${ex.family} but cidr ${show(raw.cidr)} is IPv${cidr.family}`);
    // The API requires a strict subset; an except equal to or wider than cidr
    // would be a policy that matches nothing, which it refuses to store.
    if (ex.prefix <= cidr.prefix || !cidrInside(ex, cidr)) return fail(eat, `${show(e)} must be a strict subset of cidr ${show(raw.cidr)}`);
    return cidrNetwork(ex);
  });
  return { kind: 'ipBlock', cidr, except };
}

// IANA service name, as the API validates container port names and named ports:
// 1-15 of [a-z0-9-], at least one letter, no leading/trailing or doubled hyphen.
const PORT_NAME = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;
export const isValidPortName = (s: string): boolean => PORT_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');

const isPortNumber = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

/** Validates one NetworkPolicyPort (shared with HostFirewallPolicy rules). */
export function normalizePort(raw: unknown, at: string, fail: (f: string, p: string) => never): PortMatch {
  if (!isObject(raw)) return fail(at, `must be a port object, got ${show(raw)}`);
  // Why TCP: the API defaults an absent NetworkPolicyPort.protocol to TCP.
  const protoRaw = raw.protocol ?? 'TCP';
  if (typeof protoRaw !== 'string' || !PROTOCOLS.has(protoRaw)) return fail(`${at}.protocol`, `must be TCP, UDP or SCTP, got ${show(raw.protocol)}`);
  const protocol = protoRaw as Protocol;
  const p = raw.port;
  const end = raw.endPort;
  if (absent(p)) {
    if (!absent(end)) fail(`${at}.endPort`, 'may not be set when port is not set');
    // Protocol only: every port of this protocol.
    return { protocol, kind: 'all' };
  }
  if (typeof p === 'string') {
    if (!isValidPortName(p)) fail(`${at}.port`, `must be a port number 1-65535 or a valid port name, got ${show(p)}`);
    // A name stands for one port per pod; a range of names has no meaning.
    if (!absent(end)) fail(`${at}.endPort`, 'may not be set when port is a named port');
    return { protocol, kind: 'named', name: p };
  }
  if (!isPortNumber(p)) return fail(`${at}.port`, `must be a port number 1-65535 or a valid port name, got ${show(p)}`);
  if (absent(end)) return { protocol, kind: 'range', from: p, to: p };
  if (!isPortNumber(end)) return fail(`${at}.endPort`, `must be a port number 1-65535, got ${show(end)}`);
  if (end < p) fail(`${at}.endPort`, `must be greater than or equal to port (${p}), got ${end}`);
  return { protocol, kind: 'range', from: p, to: end };
}

/** True when `ip` lies in the block's cidr and in none of its except ranges. */
export function ipBlockContains(block: IpBlockPeer, ip: IpBytes): boolean {
  return cidrHolds(block.cidr, ip) && !block.except.some((e) => cidrHolds(e, ip));
}

export interface NormalizeResult {
  policies: NormalizedPolicy[];
  errors: PolicyError[];
}

/** Normalizes many policies, collecting the ones that cannot be expressed instead of stopping at the first. */
export function normalizePolicies(list: readonly NetworkPolicy[]): NormalizeResult {
  const policies: NormalizedPolicy[] = [];
  const errors: PolicyError[] = [];
  for (const np of list) {
    try {
      policies.push(normalizePolicy(np));
    } catch (e) {
      if (e instanceof PolicyError) errors.push(e);
      else throw e;
    }
  }
  return { policies, errors };
}
