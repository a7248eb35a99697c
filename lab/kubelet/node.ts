// The Node object as kubelet keeps it: registration (labels, the not-ready
// taint the node lifecycle controller lifts once the node is Ready), status
// (addresses, capacity, nodeInfo, conditions; Ready only once the runtime's
// network is ready, i.e. a CNI config exists: kubelet's NetworkReady gate),
// and the heartbeat Lease in kube-node-lease.
import fs from 'node:fs';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { type Kube, KubeError, apiMicroTime, apiTime } from './kube.ts';

export const KUBELET_VERSION = 'v1.35.4';
export const RUNTIME_VERSION = 'weir-lab://0.1';
export const LEASE_DURATION_S = 40;

const NOT_READY_MESSAGE =
  'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized';

export interface NodeSpecOptions {
  nodeName: string;
  nodeIP: string;
  controlPlane: boolean;
}

export function nodeLabels(o: NodeSpecOptions): Record<string, string> {
  return {
    'kubernetes.io/hostname': o.nodeName,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'beta.kubernetes.io/arch': 'amd64',
    ...(o.controlPlane ? { 'node-role.kubernetes.io/control-plane': '' } : {}),
  };
}

export function initialNode(o: NodeSpecOptions): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: o.nodeName,
      labels: nodeLabels(o),
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] },
  };
}

const resources = { cpu: '2', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi', 'hugepages-2Mi': '0', 'hugepages-1Gi': '0' };

function stableId(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 32);
}

let bootId: string | undefined;
function readBootId(): string {
  if (bootId === undefined) {
    try {
      bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = '';
    }
  }
  return bootId;
}

export function nodeStatus(o: NodeSpecOptions, networkReady: boolean, transitions: Map<string, { status: string; at: string }>): Record<string, unknown> {
  const now = apiTime();
  const cond = (type: string, ok: boolean, okStatus: 'True' | 'False', reason: string, message: string) => {
    const status = ok ? okStatus : okStatus === 'True' ? 'False' : 'True';
    const prev = transitions.get(type);
    const at = prev && prev.status === status ? prev.at : now;
    transitions.set(type, { status, at });
    return { type, status, lastHeartbeatTime: now, lastTransitionTime: at, reason, message };
  };
  const id = stableId(o.nodeName);
  return {
    addresses: [
      { type: 'InternalIP', address: o.nodeIP },
      { type: 'Hostname', address: o.nodeName },
    ],
    capacity: resources,
    allocatable: resources,
    daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    nodeInfo: {
      machineID: id,
      systemUUID: `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20, 32)}`,
      bootID: readBootId(),
      kernelVersion: os.release(),
      osImage: 'weir lab node',
      containerRuntimeVersion: RUNTIME_VERSION,
      kubeletVersion: KUBELET_VERSION,
      operatingSystem: 'linux',
      architecture: 'amd64',
    },
    conditions: [
      cond('MemoryPressure', true, 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      cond('DiskPressure', true, 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      cond('PIDPressure', true, 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      networkReady
        ? cond('Ready', true, 'True', 'KubeletReady', 'kubelet is posting ready status')
        : { ...cond('Ready', false, 'True', 'KubeletNotReady', NOT_READY_MESSAGE) },
    ],
  };
}

export class NodeAgent {
  readonly #kube: Kube;
  readonly #o: NodeSpecOptions;
  readonly #transitions = new Map<string, { status: string; at: string }>();
  uid: string | undefined;
  lastReady: boolean | undefined;
  #lastPostMs = 0;

  constructor(kube: Kube, o: NodeSpecOptions) {
    this.#kube = kube;
    this.#o = o;
  }

  /** Creates the Node, or brings an existing one's labels in line. */
  async register(): Promise<void> {
    const name = this.#o.nodeName;
    let node = await this.#kube.getRawOpt(`/api/v1/nodes/${name}`);
    if (!node) {
      try {
        node = await this.#kube.createRaw('/api/v1/nodes', initialNode(this.#o));
      } catch (e) {
        if (!(e instanceof KubeError && e.conflict)) throw e;
        node = await this.#kube.getRaw(`/api/v1/nodes/${name}`);
      }
    } else {
      await this.#kube.patch('node', name, { metadata: { labels: nodeLabels(this.#o) } });
    }
    this.uid = node?.metadata?.uid;
  }

  /** Posts the status when readiness changed or a minute passed (or when forced). */
  async postStatus(networkReady: boolean, force = false): Promise<boolean> {
    if (!force && networkReady === this.lastReady && Date.now() - this.#lastPostMs < 60_000) return false;
    const status = nodeStatus(this.#o, networkReady, this.#transitions);
    await this.#kube.patch('node', this.#o.nodeName, { status }, { status: true });
    this.lastReady = networkReady;
    this.#lastPostMs = Date.now();
    return true;
  }

  /** Renews (or creates) the node's Lease. */
  async renewLease(): Promise<void> {
    const name = this.#o.nodeName;
    try {
      await this.#kube.patch('lease', name, { spec: { holderIdentity: name, leaseDurationSeconds: LEASE_DURATION_S, renewTime: apiMicroTime() } }, { namespace: 'kube-node-lease', type: 'merge' });
      return;
    } catch (e) {
      if (!(e instanceof KubeError && e.notFound)) throw e;
    }
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace: 'kube-node-lease',
        ...(this.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: this.uid }] } : {}),
      },
      spec: { holderIdentity: name, leaseDurationSeconds: LEASE_DURATION_S, renewTime: apiMicroTime() },
    };
    try {
      await this.#kube.createRaw('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease);
    } catch (e) {
      if (!(e instanceof KubeError && e.conflict)) throw e;
    }
  }
}
