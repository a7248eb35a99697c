// The synthetic cluster's objects as agent-load.ts writes them to the API:
// a Pod as created (spec.nodeName set), the status a kubelet would then
// report for it, and a NetworkPolicy.
import type { NetworkPolicy, Pod } from '../../../src/policy/types.ts';
import { nodeIP } from '../policy/cluster.ts';

const PAUSE = 'registry.k8s.io/pause:3.10';

export function podObject(p: Pod): unknown {
  const m = p.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: m.namespace, name: m.name, labels: m.labels },
    spec: {
      nodeName: p.spec?.nodeName,
      containers: [{ name: 'app', image: PAUSE, ports: p.spec?.containers?.[0]?.ports ?? [] }],
    },
  };
}

/** The status a kubelet would report for a running pod (so objects weigh what real ones do). */
export function podStatus(p: Pod): unknown {
  const ip = p.status?.podIP as string;
  const host = nodeIP(Number((p.spec?.nodeName ?? '').slice(5)));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: now });
  return {
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: host,
      hostIPs: [{ ip: host }],
      startTime: now,
      qosClass: 'BestEffort',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(cond),
      containerStatuses: [
        {
          name: 'app',
          image: PAUSE,
          imageID: 'registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a',
          containerID: `containerd://${Buffer.from(`${p.metadata?.namespace}/${p.metadata?.name}`).toString('hex').padEnd(64, '0').slice(0, 64)}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: now } },
        },
      ],
    },
  };
}

export const policyObject = (np: NetworkPolicy): unknown => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: np.metadata?.namespace, name: np.metadata?.name },
  spec: np.spec,
});
