// The manifests the lab's NetworkPolicy tests create: namespaces, the
// agnhost pods that serve and probe, and NetworkPolicies, as YAML text.
import { AGNHOST_IMAGE as AGNHOST } from '../../lab/kind.ts';

const q = (s: string): string => JSON.stringify(s);
export const labelsYaml = (l: Record<string, string>): string =>
  `{${Object.entries(l)
    .map(([a, b]) => `${q(a)}: ${q(b)}`)
    .join(', ')}}`;
export const nsYaml = (name: string, labels: Record<string, string> = {}): string =>
  `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${q(name)}, labels: ${labelsYaml(labels)}}\n`;

/**
 * A server pod as upstream's model builds it: per port, an agnhost
 * serve-hostname container for TCP and one for UDP, ports named
 * serve-PORT-proto. SCTP is declared (named ports resolve) but nothing
 * listens: this kernel has no SCTP sockets, and the matrix probes SCTP at the
 * packet level with an observer in the destination's netns.
 */
export function netprobePod(
  ns: string,
  name: string,
  labels: Record<string, string>,
  o: { node?: string | undefined; ports?: number[]; protocols?: string[] } = {},
): string {
  const protocols = o.protocols ?? ['TCP', 'UDP', 'SCTP'];
  const containers = (o.ports ?? [80]).flatMap((p) =>
    protocols
      .filter((pr) => pr !== 'SCTP')
      .map((pr) => {
        const declared = [pr, ...(pr === 'TCP' && protocols.includes('SCTP') ? ['SCTP'] : [])];
        const ports = declared.map((d) => `{name: serve-${p}-${d.toLowerCase()}, containerPort: ${p}, protocol: ${d}}`).join(', ');
        return `    - name: serve-${p}-${pr.toLowerCase()}\n      image: ${AGNHOST}\n      args: [serve-hostname, --${pr.toLowerCase()}, --http=false, --port, "${p}"]\n      ports: [${ports}]\n`;
      }),
  );
  return `apiVersion: v1
kind: Pod
metadata: {name: ${q(name)}, namespace: ${q(ns)}, labels: ${labelsYaml(labels)}}
spec:
${o.node ? `  nodeName: ${q(o.node)}\n` : ''}  containers:
${containers.join('')}`;
}

/** agnhost netexec serving HTTP on `port` (readiness from the node, which policy always allows). */
export function httpPod(ns: string, name: string, labels: Record<string, string>, port: number, node?: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${q(name)}, namespace: ${q(ns)}, labels: ${labelsYaml(labels)}}
spec:
${node ? `  nodeName: ${q(node)}\n` : ''}  containers:
    - name: web
      image: ${AGNHOST}
      args: [netexec, --http-port=${port}]
      ports: [{containerPort: ${port}}]
      readinessProbe: {httpGet: {path: /healthz, port: ${port}}, periodSeconds: 1}
`;
}

/** A client: agnhost pause (a process and a netns, nothing listening). */
export function clientPod(ns: string, name: string, labels: Record<string, string>, node?: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${q(name)}, namespace: ${q(ns)}, labels: ${labelsYaml(labels)}}
spec:
${node ? `  nodeName: ${q(node)}\n` : ''}  containers:
    - name: client
      image: ${AGNHOST}
      args: [pause]
`;
}

export function policyYaml(ns: string, name: string, spec: string): string {
  return `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${q(name)}, namespace: ${q(ns)}}\nspec:\n${spec}`;
}
