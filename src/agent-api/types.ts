// The agent's local API (HTTP over its unix socket, and the same routes on
// its public listener): the request and reply types, written once. The
// server (src/agent/status-api.ts) builds its replies as these types, so a
// change there that readers would not understand fails to compile; weirctl
// and the plugin's hand-off read them through client.ts.
import type { CheckResult } from '../agent/kernel-verifier.ts';
import type { LocalEndpoint } from '../policy/compile.ts';
import type { HostNetworkEndpoint, HostPolicyApplied } from '../policy/host-compile.ts';
import type { ClusterState } from '../policy/types.ts';

/** GET /status. */
export interface AgentStatus {
  version: string;
  node: string;
  ready: boolean;
  api: { synced: string[]; versions: Record<string, string> };
  applied: { generation: number; at: string; durationMs: number; full: boolean; operations: number; versions: Record<string, string> } | null;
  counts: {
    localPods: number;
    pods: number;
    namespaces: number;
    policies: number;
    nodes: number;
    clusterPolicies?: number;
    sets?: number;
    chains?: number;
    rules?: number;
    elements?: number;
  };
  errors: { sync: string | null; policies: string[]; routes: string[] };
  config: { hostFirewall: boolean; masquerade: boolean; nflogGroup: number };
  /** Per kind: count and hash over uid/resourceVersion of the cached objects (agents since the self-checks). */
  cache?: Record<string, { count: number; hash: string; resourceVersion: string }>;
  /** The kernel-table self-check (agents since the self-checks). */
  kernel?: { lastCheck: CheckResult | null; repairs: number; fullCheckSpacingMs: number } | null;
  /** Whether the agent can read ClusterNetworkPolicies (agents since they are mirrored): null before the first list. */
  clusterPolicyApi?: { available: boolean | null; reason?: string };
  /** Host-firewall mode: enabled or not, its failsafe ports and the HostFirewallPolicies applied. */
  hostFirewall?: HostFirewallStatus;
}

export interface EndpointsReply {
  node: string;
  endpoints: LocalEndpoint[];
}

/** GET /state: the cluster as the agent sees it (nodes may carry podCIDRs in newer agents). */
export type StateReply = Omit<ClusterState, 'nodes'> & { nodes?: Array<{ name: string; internalIPs: string[]; podCIDRs?: string[] }> };

export interface DropRecord {
  seq: number;
  time: string;
  direction: 'ingress' | 'egress' | 'host' | 'unknown';
  /** The profile chain (or host-firewall chain) whose default deny logged it. */
  chain: string | undefined;
  /** True when the rule only logged (audit mode): the packet was not dropped. */
  audit: boolean;
  family: 4 | 6 | undefined;
  src: string | undefined;
  dst: string | undefined;
  protocol: string | undefined;
  sport: number | undefined;
  dport: number | undefined;
  flags: string[] | undefined;
}

export interface DropsReply {
  last: number;
  drops: DropRecord[];
}

/** The `hostFirewall` part of GET /status. */
export interface HostFirewallStatus {
  enabled: boolean;
  audit: boolean;
  failsafe: { inbound: string[]; outbound: string[] };
  /** What becomes of node traffic no failsafe and no rule allows, per direction (enabled only; null before the first sync). */
  ingress?: 'open' | 'enforce' | 'audit' | null;
  egress?: 'open' | 'enforce' | 'audit' | null;
  policies: HostPolicyApplied[];
  hostNetworkPods: HostNetworkEndpoint[];
  hostNetworkEgress?: { enforced: false; reason: string } | { enforced: true; by: string; templates: string[] };
  hostPolicyApi?: { available: boolean | null; reason?: string };
  warnings?: string[];
}

/** POST /cni/add: the plugin's hand-off of a pod it has just wired. */
export interface CniAddRequest {
  containerID: string;
  ifname: string;
  namespace: string;
  name: string;
  /** The pod's UID from CNI_ARGS (K8S_POD_UID), when the runtime passes it. */
  uid?: string | undefined;
  ips: string[];
}

/** The reply to POST /cni/add: whether the pod's policy is in force. */
export interface CniAddReply {
  applied: boolean;
  reason?: string;
}

/** POST /cni/del. */
export interface CniDelRequest {
  containerID: string;
  ifname: string;
}

/** Any error reply: a status other than 200 and this body. */
export interface ErrorReply {
  error: string;
}
