// An action of the scenario as the kubectl command that makes it (pure).
// Labels are changed with a JSON merge patch: it sets the soak's label keys
// and removes those the action leaves out (null), in one request, and
// removing a key that is not there is no error (`kubectl label k-` would be).
import { AGNHOST_IMAGE } from '../kind.ts';
import { type Action, type Labels, NS_LABELS, POD_LABELS, PORTS, portName, SOAK_LABEL } from './scenario.ts';

export interface KubectlCall {
  args: string[];
  input?: string;
}

/** The labels as a merge patch: the soak's keys set or removed, others untouched. */
function labelPatch(labels: Labels, keys: readonly string[]): string {
  const l: Record<string, string | null> = {};
  for (const k of keys) l[k] = labels[k] ?? null;
  return JSON.stringify({ metadata: { labels: l } });
}

export function namespaceManifest(ns: string, labels: Labels): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...labels, [SOAK_LABEL]: '1' } } };
}

/**
 * A soak pod: agnhost porter serving TCP on each of PORTS (named
 * serve-<port>-tcp, so policies can name them), pinned to its node (the
 * scheduler may be down during a fault; a fault also needs a pod on one
 * given node). A grace of 1 s: porter does not handle SIGTERM, and a
 * deletion should reach the CNI DEL promptly.
 */
export function podManifest(ns: string, name: string, node: string, labels: Labels): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { ...labels, [SOAK_LABEL]: '1' } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      tolerations: [{ operator: 'Exists' }],
      containers: [
        {
          name: 'serve',
          image: AGNHOST_IMAGE,
          imagePullPolicy: 'IfNotPresent',
          args: ['porter'],
          // Each port answers with the pod's name: the prober tells which pod a connection reached.
          env: PORTS.map((p) => ({ name: `SERVE_PORT_${p}`, value: `${ns}/${name}` })),
          ports: PORTS.map((p) => ({ name: portName(p), containerPort: p, protocol: 'TCP' })),
        },
      ],
    },
  };
}

export function kubectlFor(a: Action): KubectlCall {
  const del = (what: string, ns?: string): KubectlCall => ({ args: ['delete', what, ...(ns ? ['-n', ns] : []), '--wait=false', '--ignore-not-found'] });
  switch (a.op) {
    case 'ns-create':
      return { args: ['create', '-f', '-'], input: JSON.stringify(namespaceManifest(a.ns, a.labels)) };
    case 'ns-delete':
      return del(`namespace/${a.ns}`);
    case 'ns-relabel':
      return { args: ['patch', `namespace/${a.ns}`, '--type=merge', '-p', labelPatch(a.labels, Object.keys(NS_LABELS))] };
    case 'pod-create':
      return { args: ['create', '-f', '-'], input: JSON.stringify(podManifest(a.ns, a.name, a.node, a.labels)) };
    case 'pod-delete':
      return del(`pod/${a.name}`, a.ns);
    case 'pod-relabel':
      return { args: ['patch', '-n', a.ns, `pod/${a.name}`, '--type=merge', '-p', labelPatch(a.labels, Object.keys(POD_LABELS))] };
    case 'netpol-create':
    case 'netpol-update':
      return {
        args: ['apply', '-f', '-'],
        input: JSON.stringify({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: a.name, namespace: a.ns, labels: { [SOAK_LABEL]: '1' } },
          spec: a.spec,
        }),
      };
    case 'netpol-delete':
      return del(`networkpolicy/${a.name}`, a.ns);
  }
}

/** One line for the log: what the action does. */
export function describeAction(a: Action): string {
  const l = (x: Labels): string =>
    Object.entries(x)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '-';
  switch (a.op) {
    case 'ns-create':
    case 'ns-relabel':
      return `${a.op} ${a.ns} {${l(a.labels)}}`;
    case 'ns-delete':
      return `${a.op} ${a.ns}`;
    case 'pod-create':
      return `${a.op} ${a.ns}/${a.name} on ${a.node} {${l(a.labels)}}`;
    case 'pod-delete':
      return `${a.op} ${a.ns}/${a.name} on ${a.node}`;
    case 'pod-relabel':
      return `${a.op} ${a.ns}/${a.name} {${l(a.labels)}}`;
    case 'netpol-create':
    case 'netpol-update':
      return `${a.op} ${a.ns}/${a.name} ${JSON.stringify(a.spec)}`;
    case 'netpol-delete':
      return `${a.op} ${a.ns}/${a.name}`;
  }
}
