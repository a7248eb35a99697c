// Builders for cluster snapshots in tests: small, explicit, and shaped like
// what the API server serves.
import { isWeirError } from '../../../src/errors.ts';
import { type Connection, type Endpoint, ipEndpoint, podEndpoint } from '../../../src/policy/index.ts';
import type { ContainerPort, Namespace, NetworkPolicy, NetworkPolicySpec, Pod, Protocol } from '../../../src/policy/types.ts';

export function ns(name: string, labels: Record<string, string> = {}): Namespace {
  return { metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } };
}

export interface PodOpts {
  labels?: Record<string, string>;
  ips?: string[];
  node?: string;
  hostIPs?: string[];
  hostNetwork?: boolean;
  phase?: string;
  ports?: ContainerPort[];
  sidecarPorts?: ContainerPort[];
}

/** `id` is `namespace/name`. */
export function pod(id: string, o: PodOpts = {}): Pod {
  const [namespace, name] = split(id);
  return {
    metadata: { namespace, name, labels: o.labels ?? { pod: name } },
    spec: {
      ...(o.node !== undefined ? { nodeName: o.node } : {}),
      ...(o.hostNetwork !== undefined ? { hostNetwork: o.hostNetwork } : {}),
      containers: [{ ports: o.ports ?? [] }],
      ...(o.sidecarPorts ? { initContainers: [{ restartPolicy: 'Always', ports: o.sidecarPorts }] } : {}),
    },
    status: {
      phase: o.phase ?? 'Running',
      podIPs: (o.ips ?? []).map((ip) => ({ ip })),
      ...(o.ips?.[0] ? { podIP: o.ips[0] } : {}),
      ...(o.hostIPs ? { hostIPs: o.hostIPs.map((ip) => ({ ip })), hostIP: o.hostIPs[0] } : {}),
    },
  };
}

/** `id` is `namespace/name`. */
export function policy(id: string, spec: NetworkPolicySpec): NetworkPolicy {
  const [namespace, name] = split(id);
  return { metadata: { namespace, name }, spec };
}

function split(id: string): [string, string] {
  const i = id.indexOf('/');
  if (i < 0) throw new Error(`want namespace/name, got ${id}`);
  return [id.slice(0, i), id.slice(i + 1)];
}

/** `x/a` is a pod; anything else is a bare IP. */
export function ep(s: string): Endpoint {
  if (s.includes('/') && !s.includes(':') && !/^\d/.test(s)) {
    const [n, p] = split(s);
    return podEndpoint(n, p);
  }
  return ipEndpoint(s);
}

export const conn = (src: string, dst: string, protocol: Protocol = 'TCP', port = 80): Connection => ({ src: ep(src), dst: ep(dst), protocol, port });

/** Runs `fn`, which must throw a WeirError; returns it. */
export function thrown(fn: () => unknown): Error & { code: string; field?: string; problem?: string } {
  try {
    fn();
  } catch (e) {
    if (isWeirError(e)) return e as Error & { code: string; field?: string };
    throw new Error(`expected a WeirError, got ${String(e)}`);
  }
  throw new Error('expected a throw, got none');
}
