// Port matching for NetworkPolicy rules: a normalized port entry is a
// protocol plus nothing (every port of that protocol), a numeric range
// (a single port is the range port..port), or a container port name.
//
// A name is resolved against the pod that *receives* the connection: the
// rule's subject for ingress, the destination peer for egress. It matches a
// declared container port whose name AND protocol both equal the rule's
// (a TCP rule for `dns` does not open a UDP port named `dns`). A name that
// resolves to nothing matches nothing: the rule cannot widen to "all ports".
import type { Pod, Protocol } from './types.ts';

export type PortMatch =
  | { readonly protocol: Protocol; readonly kind: 'all' }
  | { readonly protocol: Protocol; readonly kind: 'range'; readonly from: number; readonly to: number }
  | { readonly protocol: Protocol; readonly kind: 'named'; readonly name: string };

/** A pod's declared container ports by `protocol/name`. */
export type NamedPorts = ReadonlyMap<string, readonly number[]>;

const namedKey = (protocol: string, name: string): string => `${protocol}/${name}`;

/**
 * The named container ports a pod declares. Regular containers count, and so
 * do sidecars (init containers with restartPolicy Always), because they keep
 * serving while the pod runs; ordinary init containers have exited before
 * the pod serves anything, so their port names are not targets.
 */
export function namedPortsOf(pod: Pod | undefined): NamedPorts {
  const out = new Map<string, number[]>();
  if (!pod?.spec) return NO_NAMED_PORTS;
  const sidecars = (pod.spec.initContainers ?? []).filter((c) => c?.restartPolicy === 'Always');
  for (const c of [...(pod.spec.containers ?? []), ...sidecars]) {
    for (const p of c?.ports ?? []) {
      if (!p || typeof p.name !== 'string' || p.name === '') continue;
      if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) continue;
      // ContainerPort.protocol defaults to TCP in the API, as NetworkPolicyPort's does.
      const k = namedKey(p.protocol ?? 'TCP', p.name);
      const list = out.get(k) ?? [];
      if (!list.includes(p.containerPort)) list.push(p.containerPort);
      out.set(k, list);
    }
  }
  return shared(out);
}

const NO_NAMED_PORTS: NamedPorts = new Map();
const sharedPorts = new Map<string, NamedPorts>();

/**
 * One object per distinct set of named ports: the pods of a Deployment all
 * declare the same ones, and the agent holds 10k pods' worth (a Map with its
 * keys and arrays per pod was ~3 MiB at 10k pods). Bounded: past its size it
 * starts over (only sharing is lost).
 */
function shared(named: Map<string, number[]>): NamedPorts {
  if (named.size === 0) return NO_NAMED_PORTS;
  let sig = '';
  for (const [k, v] of named) sig += `${k}=${v.join(',')};`;
  const known = sharedPorts.get(sig);
  if (known) return known;
  if (sharedPorts.size >= 10_000) sharedPorts.clear();
  sharedPorts.set(sig, named);
  return named;
}

/** The port numbers `name` stands for on a pod, for `protocol`; empty when unresolvable. */
export const resolveNamedPort = (named: NamedPorts | undefined, protocol: Protocol, name: string): readonly number[] =>
  named?.get(namedKey(protocol, name)) ?? [];

/**
 * Whether one port entry admits `protocol`/`port`. `target` holds the named
 * ports of the pod receiving the connection, or is undefined when that end is
 * not a pod (then a named entry matches nothing).
 */
export function portMatches(m: PortMatch, protocol: Protocol, port: number, target: NamedPorts | undefined): boolean {
  if (m.protocol !== protocol) return false;
  switch (m.kind) {
    case 'all':
      return true;
    case 'range':
      return port >= m.from && port <= m.to;
    case 'named':
      return resolveNamedPort(target, protocol, m.name).includes(port);
  }
}

/**
 * A rule's port list: `'any'` when the rule has no ports (every port of every
 * protocol), otherwise the connection must match at least one entry.
 */
export function portsMatch(ports: readonly PortMatch[] | 'any', protocol: Protocol, port: number, target: NamedPorts | undefined): boolean {
  if (ports === 'any') return true;
  return ports.some((m) => portMatches(m, protocol, port, target));
}

/** `TCP/80`, `TCP/32000-32768`, `UDP/dns`, `SCTP/*`. */
export function formatPortMatch(m: PortMatch): string {
  switch (m.kind) {
    case 'all':
      return `${m.protocol}/*`;
    case 'range':
      return m.from === m.to ? `${m.protocol}/${m.from}` : `${m.protocol}/${m.from}-${m.to}`;
    case 'named':
      return `${m.protocol}/${m.name}`;
  }
}
