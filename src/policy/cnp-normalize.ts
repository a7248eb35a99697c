// Validation and normalization of ClusterNetworkPolicy (cnp-types.ts) into
// the rule form the evaluator and the compiler share with NetworkPolicy and
// HostFirewallPolicy: peers are pod peers (a namespace selector AND a pod
// selector), ipBlocks (networks), node peers and domain-name peers; ports
// are PortMatch entries. As for NetworkPolicy, an object is understood whole
// or refused whole with a PolicyError naming it and the field, and a refused
// one is enforced fail-closed (failClosedClusterPolicy). The CRD's schema
// makes the API server refuse most of these errors first; this is the
// second line, for a CRD of another version or a hand-made object.

import type { ClusterNetworkPolicy, CnpAction, CnpTier } from './cnp-types.ts';
import { PolicyError, type PolicyRef, show } from './errors.ts';
import type { NodePeer } from './host-normalize.ts';
import { type Direction, type IpBlockPeer, isValidPortName, normalizeIpBlock, type PodPeer } from './normalize.ts';
import type { PortMatch } from './ports.ts';
import { type CompiledSelector, compileSelector, EVERYTHING } from './selector.ts';
import type { LabelSelector, Protocol } from './types.ts';

/** Addresses learned for domain names (exact names, or `*.` suffixes); egress Accept rules only. */
export interface DomainPeer {
  readonly kind: 'domains';
  /** Lower case, no trailing dot, sorted, unique; `*.example.com` for a wildcard. */
  readonly names: readonly string[];
}

export type CnpPeer = PodPeer | IpBlockPeer | NodePeer | DomainPeer;

export interface CnpRule {
  /** Index in spec.ingress / spec.egress. */
  readonly index: number;
  /** The rule's name, when it has one (observability only). */
  readonly name: string | undefined;
  readonly action: CnpAction;
  /** `'any'` only for a rule weir made "Deny all" (fail closed); `[]` matches nothing. */
  readonly peers: readonly CnpPeer[] | 'any';
  readonly ports: readonly PortMatch[] | 'any';
}

export interface NormalizedClusterPolicy {
  readonly name: string;
  readonly uid: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly tier: CnpTier;
  readonly priority: number;
  /** The subject pods: namespace selector AND pod selector (`namespaces` subjects: every pod there). */
  readonly subject: { readonly namespaces: CompiledSelector; readonly pods: CompiledSelector };
  /** In order; empty: the policy does not affect this direction. */
  readonly ingress: readonly CnpRule[];
  readonly egress: readonly CnpRule[];
  readonly warnings: readonly string[];
}

export const cnpRef = (name: string): PolicyRef => ({ namespace: '', name, kind: 'ClusterNetworkPolicy' });

/**
 * Order of evaluation within a tier: ascending priority, then name. Why the
 * name: the API leaves equal priorities to the implementation ("can apply
 * any of the matching policies ... no way for the user to reliably
 * determine which"); weir picks one fixed order, the same in the evaluator
 * and the kernel, so that a verdict never depends on the order of events.
 */
export const byPrecedence = (a: NormalizedClusterPolicy, b: NormalizedClusterPolicy): number =>
  a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): v is null | undefined => v === undefined || v === null;
type Fail = (field: string, problem: string) => never;

const TIERS: ReadonlySet<string> = new Set<CnpTier>(['Admin', 'Baseline']);
const ACTIONS: ReadonlySet<string> = new Set<CnpAction>(['Accept', 'Deny', 'Pass']);
const INGRESS_PEERS = ['namespaces', 'pods'] as const;
const EGRESS_PEERS = ['namespaces', 'pods', 'nodes', 'networks', 'domainNames'] as const;
const L4: readonly [string, Protocol][] = [
  ['tcp', 'TCP'],
  ['udp', 'UDP'],
  ['sctp', 'SCTP'],
];
// The CRD's pattern for DomainName.
const DOMAIN = /^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$/;

/** Lower case, without the trailing dot: how names are compared (DNS names are case-insensitive). */
export const canonicalDomain = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/**
 * Whether a learned (canonical) name matches a domainNames entry: an exact
 * name only itself; `*.example.com` one or more whole labels before
 * `example.com`, never `example.com` itself.
 */
export function domainMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === name;
  const suffix = pattern.slice(1);
  return name.length > suffix.length && name.endsWith(suffix);
}

/** The known fields of an object that are set (not absent). */
const setFields = (o: Record<string, unknown>, known: readonly string[]): string[] => known.filter((k) => !absent(o[k]));

/** Validates and normalizes one ClusterNetworkPolicy; throws PolicyError on anything weir cannot express. */
export function normalizeClusterPolicy(cnp: ClusterNetworkPolicy): NormalizedClusterPolicy {
  const meta: unknown = cnp?.metadata;
  const nm = isObject(meta) ? meta.name : undefined;
  if (typeof nm !== 'string' || nm === '') throw new PolicyError('metadata.name', `must be a non-empty string, got ${show(nm)}`);
  const ref = cnpRef(nm);
  const fail: Fail = (field, problem) => {
    throw new PolicyError(field, problem, ref);
  };
  const m = meta as Record<string, unknown>;
  const spec: unknown = cnp.spec;
  if (!isObject(spec)) return fail('spec', `must be an object, got ${show(spec)}`);
  const tier = spec.tier;
  if (typeof tier !== 'string' || !TIERS.has(tier)) fail('spec.tier', `must be Admin or Baseline, got ${show(tier)}`);
  const priority = spec.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 1000)
    fail('spec.priority', `must be an integer 0-1000, got ${show(priority)}`);
  const warnings: string[] = [];
  return {
    name: nm,
    uid: typeof m.uid === 'string' ? m.uid : undefined,
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : undefined,
    tier: tier as CnpTier,
    priority: priority as number,
    subject: normalizeSubject(spec.subject, ref, fail),
    ingress: normalizeCnpRules(spec.ingress, 'ingress', ref, fail, warnings),
    egress: normalizeCnpRules(spec.egress, 'egress', ref, fail, warnings),
    warnings,
  };
}

function normalizeSubject(raw: unknown, ref: PolicyRef, fail: Fail): NormalizedClusterPolicy['subject'] {
  if (!isObject(raw)) return fail('spec.subject', `must be an object, got ${show(raw)}`);
  const fields = setFields(raw, ['namespaces', 'pods']);
  if (fields.length !== 1) fail('spec.subject', `must set exactly one of namespaces, pods, got ${show(Object.keys(raw))}`);
  if (fields[0] === 'namespaces') return { namespaces: compileSelector(raw.namespaces as LabelSelector, 'spec.subject.namespaces', ref), pods: EVERYTHING };
  const p = namespacedPod(raw.pods, 'spec.subject.pods', ref, fail);
  return { namespaces: p.namespaces as CompiledSelector, pods: p.pods };
}

/** `pods`: a namespace selector (absent: every namespace) AND a pod selector (required). */
function namespacedPod(raw: unknown, at: string, ref: PolicyRef, fail: Fail): PodPeer {
  if (!isObject(raw)) return fail(at, `must be an object, got ${show(raw)}`);
  if (absent(raw.podSelector)) fail(`${at}.podSelector`, 'is required ({} selects every pod)');
  const namespaces = absent(raw.namespaceSelector) ? EVERYTHING : compileSelector(raw.namespaceSelector as LabelSelector, `${at}.namespaceSelector`, ref);
  return { kind: 'pods', namespaces, pods: compileSelector(raw.podSelector as LabelSelector, `${at}.podSelector`, ref) };
}

function normalizeCnpRules(raw: unknown, dir: Direction, ref: PolicyRef, fail: Fail, warnings: string[]): CnpRule[] {
  if (absent(raw)) return [];
  if (!Array.isArray(raw)) return fail(`spec.${dir}`, `must be a list, got ${show(raw)}`);
  return raw.map((r, index) => {
    const at = `spec.${dir}[${index}]`;
    if (!isObject(r)) return fail(at, `must be a rule object, got ${show(r)}`);
    const action = r.action;
    if (typeof action !== 'string' || !ACTIONS.has(action)) fail(`${at}.action`, `must be Accept, Deny or Pass, got ${show(action)}`);
    if (!absent(r.name) && typeof r.name !== 'string') fail(`${at}.name`, `must be a string, got ${show(r.name)}`);
    const name = typeof r.name === 'string' && r.name !== '' ? r.name : undefined;
    const key = dir === 'ingress' ? 'from' : 'to';
    const list = r[key];
    if (!Array.isArray(list) || list.length === 0) fail(`${at}.${key}`, `must be a non-empty list, got ${show(list)}`);
    const peers: CnpPeer[] = [];
    let unknownPeer = false;
    (list as unknown[]).forEach((p, i) => {
      const peer = cnpPeer(p, `${at}.${key}[${i}]`, dir, ref, fail);
      if (peer === 'unknown') unknownPeer = true;
      else peers.push(...peer);
    });
    const ports = normalizeProtocols(r.protocols, `${at}.protocols`, fail);
    const named = ports !== 'any' && ports.some((p) => p.kind === 'named');
    if (named && peers.some((p) => p.kind !== 'pods'))
      fail(`${at}.protocols`, 'destinationNamedPort cannot be used with networks, nodes or domainNames peers (they have no named ports)');
    if (peers.some((p) => p.kind === 'domains') && action !== 'Accept')
      fail(`${at}.to`, `domainNames may only be used with Accept rules, not ${action as string}`);
    if (unknownPeer) {
      // The API: a peer with no field weir knows means a CRD of another
      // version; "for Accept rules, fail closed means treat the rule as
      // matching no traffic. For Deny and Pass rules, ... as a 'Deny all' rule".
      warnings.push(`${at}.${key}: a peer sets no field weir knows; ${action === 'Accept' ? 'that peer matches nothing' : 'the rule denies all traffic'}`);
      if (action !== 'Accept') return { index, name, action: 'Deny', peers: 'any', ports: 'any' };
    }
    return { index, name, action: action as CnpAction, peers, ports };
  });
}

/** One peer, as normalized peers (a `networks` list is one ipBlock each); `'unknown'` when it sets no known field. */
function cnpPeer(raw: unknown, at: string, dir: Direction, ref: PolicyRef, fail: Fail): CnpPeer[] | 'unknown' {
  if (!isObject(raw)) return fail(at, `must be a peer object, got ${show(raw)}`);
  const known: readonly string[] = dir === 'ingress' ? INGRESS_PEERS : EGRESS_PEERS;
  const fields = setFields(raw, known);
  // A field weir does not know (a newer CRD's peer type) makes the whole peer unknown.
  if (fields.length === 0 || Object.keys(raw).some((k) => !absent(raw[k]) && !known.includes(k))) return 'unknown';
  if (fields.length > 1) fail(at, `must set exactly one of ${known.join(', ')}, got ${fields.join(', ')}`);
  const value = raw[fields[0] as string];
  switch (fields[0]) {
    case 'namespaces':
      return [{ kind: 'pods', namespaces: compileSelector(value as LabelSelector, `${at}.namespaces`, ref), pods: EVERYTHING }];
    case 'pods':
      return [namespacedPod(value, `${at}.pods`, ref, fail)];
    case 'nodes':
      return [{ kind: 'nodes', nodes: compileSelector(value as LabelSelector, `${at}.nodes`, ref) }];
    case 'networks':
      if (!Array.isArray(value) || value.length === 0) return fail(`${at}.networks`, `must be a non-empty list of CIDRs, got ${show(value)}`);
      // The API requires masked CIDRs; one with host bits set means its network, as for ipBlock.
      return value.map((c, i) => normalizeIpBlock({ cidr: c }, `${at}.networks[${i}]`, fail));
    default: {
      if (!Array.isArray(value) || value.length === 0) return fail(`${at}.domainNames`, `must be a non-empty list, got ${show(value)}`);
      const names = value.map((d, i) =>
        typeof d === 'string' && DOMAIN.test(d) ? canonicalDomain(d) : fail(`${at}.domainNames[${i}]`, `not a domain name or *. wildcard: ${show(d)}`),
      );
      return [{ kind: 'domains', names: [...new Set(names)].sort() }];
    }
  }
}

function portOf(raw: unknown, protocol: Protocol, at: string, fail: Fail): PortMatch {
  if (absent(raw)) return { protocol, kind: 'all' };
  if (!isObject(raw)) return fail(at, `must be an object, got ${show(raw)}`);
  const fields = setFields(raw, ['number', 'range']);
  if (fields.length !== 1) return fail(at, `must set exactly one of number, range, got ${show(Object.keys(raw))}`);
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
  if (fields[0] === 'number')
    return ok(raw.number)
      ? { protocol, kind: 'range', from: raw.number, to: raw.number }
      : fail(`${at}.number`, `must be a port 1-65535, got ${show(raw.number)}`);
  const r = raw.range;
  if (!isObject(r) || !ok(r.start) || !ok(r.end)) return fail(`${at}.range`, `must have start and end ports 1-65535, got ${show(r)}`);
  if (r.end < r.start) fail(`${at}.range.end`, `must not be less than start (${r.start}), got ${r.end}`);
  return { protocol, kind: 'range', from: r.start, to: r.end };
}

/**
 * `protocols`: absent matches every packet. A destinationNamedPort carries
 * no protocol: it names a container port, which declares its own, so it
 * stands for that name under each protocol (a name resolves under at most
 * the one the pod declares for it).
 */
function normalizeProtocols(raw: unknown, at: string, fail: Fail): PortMatch[] | 'any' {
  if (absent(raw)) return 'any';
  if (!Array.isArray(raw) || raw.length === 0) return fail(at, `must be a non-empty list, got ${show(raw)}`);
  return raw.flatMap((p, i): PortMatch[] => {
    const pat = `${at}[${i}]`;
    if (!isObject(p)) return fail(pat, `must be an object, got ${show(p)}`);
    const fields = setFields(p, ['tcp', 'udp', 'sctp', 'destinationNamedPort']);
    if (fields.length !== 1) return fail(pat, `must set exactly one of tcp, udp, sctp, destinationNamedPort, got ${show(Object.keys(p))}`);
    const f = fields[0] as string;
    if (f === 'destinationNamedPort') {
      const n = p.destinationNamedPort;
      if (typeof n !== 'string' || !isValidPortName(n)) return fail(`${pat}.destinationNamedPort`, `must be a valid port name, got ${show(n)}`);
      return L4.map(([, protocol]) => ({ protocol, kind: 'named', name: n }));
    }
    const protocol = (L4.find(([k]) => k === f) as [string, Protocol])[1];
    const body = p[f];
    if (!isObject(body)) return fail(`${pat}.${f}`, `must be an object, got ${show(body)}`);
    // `tcp: {}` (the CRD asks for destinationPort) means every port of the protocol, as the API overview says.
    return [portOf(body.destinationPort, protocol, `${pat}.${f}.destinationPort`, fail)];
  });
}

/**
 * A ClusterNetworkPolicy weir cannot express: "Deny all" for its subjects,
 * in its tier at its priority, in each direction it has rules for. What
 * cannot be read takes the closed side: tier Admin, priority 0, every pod
 * as subject, both directions.
 */
export function failClosedClusterPolicy(cnp: ClusterNetworkPolicy): NormalizedClusterPolicy {
  const spec = (isObject(cnp?.spec) ? cnp.spec : {}) as Record<string, unknown>;
  const name = typeof cnp?.metadata?.name === 'string' ? cnp.metadata.name : '';
  let subject: NormalizedClusterPolicy['subject'] = { namespaces: EVERYTHING, pods: EVERYTHING };
  try {
    subject = normalizeSubject(spec.subject, cnpRef(name), (f, p) => {
      throw new PolicyError(f, p);
    });
  } catch {
    // keep every pod
  }
  const p = spec.priority;
  const covers = (raw: unknown): boolean => !(Array.isArray(raw) && raw.length === 0) && !absent(raw);
  const denyAll: CnpRule[] = [{ index: 0, name: 'weir: fail closed', action: 'Deny', peers: 'any', ports: 'any' }];
  const unreadable = !isObject(cnp?.spec);
  return {
    name,
    uid: cnp?.metadata?.uid,
    resourceVersion: cnp?.metadata?.resourceVersion,
    tier: spec.tier === 'Baseline' ? 'Baseline' : 'Admin',
    priority: typeof p === 'number' && Number.isInteger(p) && p >= 0 && p <= 1000 ? p : 0,
    subject,
    ingress: unreadable || covers(spec.ingress) ? denyAll : [],
    egress: unreadable || covers(spec.egress) ? denyAll : [],
    warnings: [],
  };
}

/** Normalizes every policy, fail-closed for the ones that cannot be expressed; in order of precedence within each tier. */
export function normalizeClusterPolicies(list: readonly ClusterNetworkPolicy[]): { policies: NormalizedClusterPolicy[]; errors: PolicyError[] } {
  const policies: NormalizedClusterPolicy[] = [];
  const errors: PolicyError[] = [];
  for (const cnp of list) {
    const r = normalizeOrFailClosed(cnp);
    policies.push(r.norm);
    if (r.error) errors.push(r.error);
  }
  return { policies: policies.sort(byPrecedence), errors };
}

/** One policy: normalized, or fail-closed with the error that refused it. */
export function normalizeOrFailClosed(cnp: ClusterNetworkPolicy): { norm: NormalizedClusterPolicy; error?: PolicyError } {
  try {
    return { norm: normalizeClusterPolicy(cnp) };
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return { norm: failClosedClusterPolicy(cnp), error: e };
  }
}
