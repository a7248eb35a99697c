// The cluster snapshot as the reference evaluator (evaluator.ts) reads it:
// pods, nodes and namespaces indexed by name and address, a connection's
// endpoints resolved, and selectors, peers and named ports matched (memoized,
// since the evaluator asks the same questions for many connections). It
// judges nothing itself. Pure.
//
// Semantics it carries:
// - Pods in phase Succeeded/Failed or without an IP are ignored: they are
//   neither subjects nor peers, and their old IPs are plain addresses.
// - ipBlock matches by address, pod addresses included. The docs advise that
//   ipBlock "should be cluster-external IPs, since Pod IPs are ephemeral and
//   unpredictable", but do not exempt pods, and the upstream e2e suite tests
//   ipBlock against pod IPs; so a pod peer matches an ipBlock containing its IP.
// - A bare IP endpoint that is a live pod's IP is that pod; a node's IP is
//   that node; anything else is external.
import { formatIp, type IpBytes, type IpFamily, tryParseIp } from '../ip.ts';
import { PolicyQueryError } from './errors.ts';
import type { HostPeer } from './host-normalize.ts';
import { ipBlockContains, type NormalizedPeer } from './normalize.ts';
import { type NamedPorts, namedPortsOf } from './ports.ts';
import { type CompiledSelector, selectorMatches } from './selector.ts';
import type { ClusterState, Labels, NodeInfo, Pod } from './types.ts';
import type { Connection, Endpoint, PodRef, ResolvedEndpoint } from './verdict.ts';

export interface PodInfo {
  readonly ref: PodRef;
  readonly key: string;
  readonly labels: Labels;
  readonly nodeName: string | undefined;
  readonly hostNetwork: boolean;
  /** Considered by NetworkPolicy at all (has an IP, not terminated). */
  readonly live: boolean;
  /** Pod addresses by family, in podIPs order. */
  readonly ips: ReadonlyMap<IpFamily, IpBytes>;
  readonly families: readonly IpFamily[];
  readonly hostIps: ReadonlyMap<IpFamily, IpBytes>;
  readonly hostIpTexts: ReadonlySet<string>;
  readonly raw: Pod;
}

/** A resolved endpoint plus what the judging needs. */
export interface End {
  readonly view: ResolvedEndpoint;
  readonly bytes: IpBytes;
  readonly pod: PodInfo | undefined;
}

const podKey = (ns: string, name: string): string => `${ns}/${name}`;
const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

function parseIps(list: readonly (string | undefined)[], what: string): Map<IpFamily, IpBytes> {
  const out = new Map<IpFamily, IpBytes>();
  for (const s of list) {
    if (s === undefined || s === '') continue;
    const ip = tryParseIp(s);
    if (!ip) throw new PolicyQueryError(`${what}: invalid IP address ${JSON.stringify(s)}`);
    if (!out.has(ip.family)) out.set(ip.family, ip);
  }
  return out;
}

export class SnapshotIndex {
  readonly #pods = new Map<string, PodInfo>();
  readonly #podsByNs = new Map<string, PodInfo[]>();
  readonly #podByIp = new Map<string, PodInfo | 'ambiguous'>();
  readonly #nodeByIp = new Map<string, string>();
  readonly #nodeIps = new Map<string, Set<string>>();
  readonly #nsLabels = new Map<string, Labels>();
  readonly #memo = new Map<string, boolean>();
  readonly #named = new Map<string, NamedPorts>();
  readonly #nodes: readonly NodeInfo[];

  /** Indexes the namespaces, nodes and pods of a snapshot; throws PolicyQueryError for unusable state. */
  constructor(state: ClusterState) {
    this.#nodes = state.nodes ?? [];
    for (const ns of state.namespaces) {
      const name = ns.metadata?.name;
      if (typeof name !== 'string' || name === '') throw new PolicyQueryError('a namespace has no metadata.name');
      // The API server sets kubernetes.io/metadata.name on every namespace;
      // a snapshot missing it (or missing the namespace) still selects as the cluster does.
      this.#nsLabels.set(name, { ...(ns.metadata?.labels ?? {}), [NS_NAME_LABEL]: name });
    }
    for (const n of state.nodes ?? []) {
      for (const ip of parseIps(n.internalIPs, `node ${n.name}`).values()) this.#addNodeIp(n.name, ip);
    }
    for (const raw of state.pods) this.#addPod(raw);
  }

  #addNodeIp(node: string, ip: IpBytes): void {
    const text = formatIp(ip.bytes);
    if (!this.#nodeByIp.has(text)) this.#nodeByIp.set(text, node);
    const set = this.#nodeIps.get(node) ?? new Set<string>();
    set.add(text);
    this.#nodeIps.set(node, set);
  }

  #addPod(raw: Pod): void {
    const ns = raw.metadata?.namespace;
    const name = raw.metadata?.name;
    if (typeof ns !== 'string' || ns === '' || typeof name !== 'string' || name === '') {
      throw new PolicyQueryError('a pod has no metadata.namespace or metadata.name');
    }
    const key = podKey(ns, name);
    if (this.#pods.has(key)) throw new PolicyQueryError(`pod ${key} appears twice in the cluster state`);
    const st = raw.status ?? {};
    const ipTexts = st.podIPs && st.podIPs.length > 0 ? st.podIPs.map((p) => p?.ip) : [st.podIP];
    const ips = parseIps(ipTexts, `pod ${key}`);
    const hostTexts = st.hostIPs && st.hostIPs.length > 0 ? st.hostIPs.map((p) => p?.ip) : [st.hostIP];
    const hostNetwork = raw.spec?.hostNetwork === true;
    // A hostNetwork pod's podIPs are its node's addresses.
    const hostIps = parseIps(hostNetwork ? [...hostTexts, ...ipTexts] : hostTexts, `pod ${key} hostIPs`);
    const nodeName = raw.spec?.nodeName || undefined;
    const live = ips.size > 0 && st.phase !== 'Succeeded' && st.phase !== 'Failed';
    const hostIpTexts = new Set([...hostIps.values()].map((ip) => formatIp(ip.bytes)));
    const labels = raw.metadata?.labels ?? {};
    const info: PodInfo = { ref: { namespace: ns, name }, key, labels, nodeName, hostNetwork, live, ips, families: [...ips.keys()], hostIps, hostIpTexts, raw };
    this.#pods.set(key, info);
    const list = this.#podsByNs.get(ns) ?? [];
    list.push(info);
    this.#podsByNs.set(ns, list);
    if (nodeName) for (const ip of hostIps.values()) this.#addNodeIp(nodeName, ip);
    if (live && !hostNetwork) {
      for (const ip of ips.values()) {
        const text = formatIp(ip.bytes);
        this.#podByIp.set(text, this.#podByIp.has(text) ? 'ambiguous' : info);
      }
    }
  }

  /** Every pod of the snapshot, live or not. */
  allPods(): PodInfo[] {
    return [...this.#pods.values()];
  }

  podsIn(namespace: string): readonly PodInfo[] {
    return this.#podsByNs.get(namespace) ?? [];
  }

  pod(ref: PodRef): PodInfo | undefined {
    return this.#pods.get(podKey(ref.namespace, ref.name));
  }

  #matches(sel: CompiledSelector, what: 'pod' | 'ns', id: string, labels: () => Labels): boolean {
    const k = `${sel.key}\u0000${what}\u0000${id}`;
    let v = this.#memo.get(k);
    if (v === undefined) {
      v = selectorMatches(sel, labels());
      this.#memo.set(k, v);
    }
    return v;
  }

  selectsPod(sel: CompiledSelector, pod: PodInfo): boolean {
    return this.#matches(sel, 'pod', pod.key, () => pod.labels);
  }

  /** A namespace's labels, kubernetes.io/metadata.name included (that label alone when it has no Namespace object). */
  namespaceLabels(ns: string): Labels {
    return this.#nsLabels.get(ns) ?? { [NS_NAME_LABEL]: ns };
  }

  selectsNamespace(sel: CompiledSelector, ns: string): boolean {
    return this.#matches(sel, 'ns', ns, () => this.namespaceLabels(ns));
  }

  peerMatches(peer: NormalizedPeer, policyNs: string, end: End): boolean {
    if (peer.kind === 'ipBlock') return ipBlockContains(peer, end.bytes);
    const pod = end.pod;
    if (!pod) return false;
    const nsOk = peer.namespaces === 'own' ? pod.ref.namespace === policyNs : this.selectsNamespace(peer.namespaces, pod.ref.namespace);
    return nsOk && this.selectsPod(peer.pods, pod);
  }

  hostPeerMatches(peer: HostPeer, end: End): boolean {
    if (peer.kind !== 'nodes') return this.peerMatches(peer, '', end);
    return this.#nodes.some(
      (n) =>
        selectorMatches(peer.nodes, n.labels ?? {}) &&
        n.internalIPs.some((t) => {
          const ip = tryParseIp(t);
          return ip !== undefined && formatIp(ip.bytes) === end.view.ip;
        }),
    );
  }

  namedPorts(pod: PodInfo): NamedPorts {
    let n = this.#named.get(pod.key);
    if (!n) {
      n = namedPortsOf(pod.raw);
      this.#named.set(pod.key, n);
    }
    return n;
  }

  /** Union of named ports of the pods given (they share the node's address). */
  mergedNamed(pods: readonly PodInfo[]): NamedPorts {
    const out = new Map<string, number[]>();
    for (const p of pods) for (const [k, v] of this.namedPorts(p)) out.set(k, [...new Set([...(out.get(k) ?? []), ...v])]);
    return out;
  }

  isOwnNode(pod: PodInfo, peer: End): boolean {
    const ip = peer.view.ip;
    return pod.hostIpTexts.has(ip) || (pod.nodeName !== undefined && (this.#nodeIps.get(pod.nodeName)?.has(ip) ?? false));
  }

  /** hostNetwork pods of a node that are not terminated (their ports are the node's). */
  hostNetworkPodsOn(node: string): PodInfo[] {
    return [...this.#pods.values()].filter(
      (p) => p.hostNetwork && p.nodeName === node && p.raw.status?.phase !== 'Succeeded' && p.raw.status?.phase !== 'Failed',
    );
  }

  nodeLabels(node: string): Labels {
    return this.#nodes.find((n) => n.name === node)?.labels ?? {};
  }

  podOf(e: Endpoint & { kind: 'pod' }): PodInfo {
    const info = this.#pods.get(podKey(e.namespace, e.name));
    if (!info) throw new PolicyQueryError(`pod ${podKey(e.namespace, e.name)} is not in the cluster state`);
    if (!info.live) {
      throw new PolicyQueryError(`pod ${info.key} has no IP or has terminated: NetworkPolicy ignores it, so it has no connections to judge`);
    }
    return info;
  }

  resolve(e: Endpoint, family: IpFamily): End {
    if (e.kind === 'pod') {
      const info = this.podOf(e);
      if (info.hostNetwork) {
        const bytes = info.hostIps.get(family);
        if (!bytes) throw new PolicyQueryError(`hostNetwork pod ${info.key} has no IPv${family} host address`);
        return { view: { kind: 'node', ip: formatIp(bytes.bytes), node: info.nodeName, hostNetworkPod: info.ref }, bytes, pod: undefined };
      }
      const bytes = info.ips.get(family);
      if (!bytes) throw new PolicyQueryError(`pod ${info.key} has no IPv${family} address`);
      return { view: { kind: 'pod', pod: info.ref, ip: formatIp(bytes.bytes), node: info.nodeName }, bytes, pod: info };
    }
    const bytes = tryParseIp(e.ip);
    if (!bytes) throw new PolicyQueryError(`invalid IP address ${JSON.stringify(e.ip)}`);
    const ip = formatIp(bytes.bytes);
    const owner = this.#podByIp.get(ip);
    if (owner === 'ambiguous') throw new PolicyQueryError(`${ip} is the address of more than one live pod`);
    if (owner) return { view: { kind: 'pod', pod: owner.ref, ip, node: owner.nodeName }, bytes, pod: owner };
    const node = this.#nodeByIp.get(ip);
    if (node !== undefined) return { view: { kind: 'node', ip, node }, bytes, pod: undefined };
    return { view: { kind: 'external', ip }, bytes, pod: undefined };
  }

  /** The address family of a connection: that of its IP ends, else one both pods have. */
  familyOf(conn: Connection): IpFamily {
    const fams = new Set<IpFamily>();
    for (const e of [conn.src, conn.dst]) {
      if (e.kind !== 'ip') continue;
      const ip = tryParseIp(e.ip);
      if (!ip) throw new PolicyQueryError(`invalid IP address ${JSON.stringify(e.ip)}`);
      fams.add(ip.family);
    }
    if (conn.family !== undefined) fams.add(conn.family);
    if (fams.size > 1) throw new PolicyQueryError('the connection mixes IPv4 and IPv6');
    const [only] = fams;
    if (only !== undefined) return only;
    // Both ends are pods: the source's primary family that the destination also has.
    const famsOf = (e: Endpoint & { kind: 'pod' }): readonly IpFamily[] => {
      const p = this.podOf(e);
      return p.hostNetwork ? [...p.hostIps.keys()] : p.families;
    };
    const s = famsOf(conn.src as Endpoint & { kind: 'pod' });
    const d = famsOf(conn.dst as Endpoint & { kind: 'pod' });
    const common = s.find((f) => d.includes(f));
    if (common === undefined) throw new PolicyQueryError('the two pods share no address family');
    return common;
  }
}
