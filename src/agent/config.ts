// weir-agent's configuration: every flag with its environment variable and a
// --help line that says what it does. Parsed by yargs in agent/main.ts.
import type { Argv } from 'yargs';
import { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, type PortRange, parsePortRanges } from '../policy/host-normalize.ts';
import { checkOptInLabel, DEFAULT_METADATA_OPTIN_LABEL } from '../policy/metadata-guard.ts';

export interface AgentConfig {
  nodeName: string;
  kubeconfig: string | undefined;
  cniConfDir: string;
  cniConfName: string;
  cniBinDir: string;
  installCniFrom: string | undefined;
  dataDir: string;
  runDir: string;
  mtu: number | undefined;
  masquerade: boolean;
  nonMasqueradeCidr: string[];
  nflogGroup: number;
  denyLogRate: string;
  debounceMs: number;
  healthAddress: string;
  logLevel: string;
  hostFirewall: boolean;
  /** The whole host firewall logs what it would drop instead of dropping it. */
  hostFirewallAudit: boolean;
  failsafeInbound: PortRange[];
  failsafeOutbound: PortRange[];
  /** Where to find a hostNetwork pod's cgroup below cgroupRoot; `{uid}` / `{uid_}` stand for its UID (dashes / underscores). */
  hostNetworkCgroupTemplates: string[];
  /** Where the host's cgroup v2 hierarchy is visible to the agent. */
  cgroupRoot: string;
  /** Seconds between sweeps of the IPAM store for records whose container is gone (0: never); default 60. */
  ipamSweepInterval?: number;
  /** A record younger than this (seconds) is never swept (ADD reserves before it wires); default 120. */
  ipamSweepGrace?: number;
  /** Floor of the spacing of full kernel-table checks, in seconds (kernel-verifier.ts); default 5. */
  kernelCheckMinInterval?: number;
  /** The cloud metadata guard (src/policy/metadata-guard.ts); default on. */
  metadataGuard?: boolean;
  /** Pods or namespaces with this label (`key` or `key=value`) pass the guard; empty: no label does. */
  metadataGuardOptinLabel?: string;
}

/** The host firewall's flags, added to agentOptions as one group. */
const HOST_FIREWALL_FLAGS = {
  'host-firewall': { type: 'boolean', default: false, describe: "Also police the node's own addresses and hostNetwork pods" },
  'host-firewall-audit': {
    type: 'boolean',
    default: false,
    describe: 'Host firewall in audit: log what it would drop (weir audit host …) and drop nothing',
  },
  'failsafe-inbound': {
    type: 'string',
    default: DEFAULT_FAILSAFE_INBOUND,
    describe: 'Inbound proto:port[-port] list no policy can close (host firewall); "none" for none',
  },
  'failsafe-outbound': {
    type: 'string',
    default: DEFAULT_FAILSAFE_OUTBOUND,
    describe: 'Outbound proto:port[-port] list no policy can close (host firewall); "none" for none',
  },
  'host-network-cgroup-template': {
    type: 'string',
    array: true,
    default: [] as string[],
    describe:
      'cgroup of a hostNetwork pod below --cgroup-root, e.g. kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice (repeatable; first existing wins); enables egress policy for hostNetwork pods',
  },
  'cgroup-root': {
    type: 'string',
    default: '/sys/fs/cgroup',
    describe: "Where the host's cgroup v2 hierarchy is mounted in the agent (for --host-network-cgroup-template)",
  },
} as const;

/** The metadata guard's flags, added to agentOptions as one group. */
const METADATA_GUARD_FLAGS = {
  'metadata-guard': {
    type: 'boolean',
    default: true,
    describe: 'Drop pod traffic to the cloud metadata service (169.254.169.254, fd00:ec2::254) unless the pod is exempt',
  },
  'metadata-guard-optin-label': {
    type: 'string',
    default: DEFAULT_METADATA_OPTIN_LABEL,
    describe: 'Label (key or key=value) that exempts a pod, or every pod of a namespace, from the metadata guard; empty: none',
    coerce: (s: string): string => {
      checkOptInLabel(s);
      return s;
    },
  },
} as const;

/** The agent's local socket, from its run directory. */
export const agentSocketPath = (runDir: string): string => `${runDir}/agent.sock`;

export function agentOptions<T>(y: Argv<T>) {
  return y
    .env('WEIR')
    .option('node-name', {
      type: 'string',
      demandOption: true,
      describe: "This node's name (env NODE_NAME from the downward API also works)",
      default: process.env['NODE_NAME'],
    })
    .option('kubeconfig', { type: 'string', describe: 'kubeconfig file; in-cluster service account config when absent', default: process.env['KUBECONFIG'] })
    .option('cni-conf-dir', { type: 'string', default: '/etc/cni/net.d', describe: 'Where the CNI conflist is written once the Node has spec.podCIDRs' })
    .option('cni-conf-name', { type: 'string', default: '10-weir.conflist', describe: 'File name of the conflist' })
    .option('cni-bin-dir', { type: 'string', default: '/opt/cni/bin', describe: 'Where --install-cni-from installs the weir plugin' })
    .option('install-cni-from', { type: 'string', describe: 'Directory holding the weir executable and koffi.node to install into --cni-bin-dir at start' })
    .option('data-dir', { type: 'string', default: '/var/lib/cni/weir', describe: "The plugin's IPAM directory (written into the conflist)" })
    .option('run-dir', { type: 'string', default: '/run/weir', describe: 'Directory of the local status socket agent.sock (for weirctl and the plugin)' })
    .option('mtu', { type: 'number', describe: 'Pod interface MTU written into the conflist; the kernel default when absent' })
    .option('masquerade', { type: 'boolean', default: true, describe: "SNAT pod traffic leaving the cluster's pod CIDRs to the node address" })
    .option('non-masquerade-cidr', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: "Extra destinations that see pod addresses unchanged (repeatable); every node's pod CIDR is always included",
    })
    .option('nflog-group', { type: 'number', default: 100, describe: 'nflog group that denied packets are logged to (weirctl drops reads it)' })
    .option('deny-log-rate', { type: 'string', default: '10/second', describe: 'Rate limit of that log, in nft syntax' })
    .option('debounce-ms', {
      type: 'number',
      default: 20,
      describe: 'Wait this long after the first API event of a burst, so the burst becomes one transaction',
    })
    .option('health-address', { type: 'string', default: '0.0.0.0:9962', describe: 'host:port of /healthz, /readyz and /metrics' })
    .option('log-level', { type: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], describe: 'Log level (JSON logs on stderr)' })
    .options(HOST_FIREWALL_FLAGS)
    .option('ipam-sweep-interval', {
      type: 'number',
      default: 60,
      describe: 'Seconds between sweeps that free IPAM records whose pod and host veth are gone (0: never)',
    })
    .option('ipam-sweep-grace', { type: 'number', default: 120, describe: 'IPAM records younger than this many seconds are never swept' })
    .option('kernel-check-min-interval', {
      type: 'number',
      default: 5,
      describe: "Seconds at least between two full comparisons of the kernel's table with the applied ruleset (spaced by 100x their cost above that)",
    })
    .options(METADATA_GUARD_FLAGS)
    .check((a) => {
      if (!a['node-name']) throw new Error('--node-name (or NODE_NAME) is required');
      if (!/^[^:]*:\d+$/.test(a['health-address'] as string)) throw new Error('--health-address must be host:port');
      parsePortRanges(a['failsafe-inbound'] as string);
      parsePortRanges(a['failsafe-outbound'] as string);
      return true;
    });
}

export function toConfig(a: Record<string, unknown>): AgentConfig {
  return {
    nodeName: a['node-name'] as string,
    kubeconfig: a['kubeconfig'] as string | undefined,
    cniConfDir: a['cni-conf-dir'] as string,
    cniConfName: a['cni-conf-name'] as string,
    cniBinDir: a['cni-bin-dir'] as string,
    installCniFrom: a['install-cni-from'] as string | undefined,
    dataDir: a['data-dir'] as string,
    runDir: a['run-dir'] as string,
    mtu: a['mtu'] as number | undefined,
    masquerade: a['masquerade'] as boolean,
    nonMasqueradeCidr: (a['non-masquerade-cidr'] as string[]).flatMap((s) => s.split(',')).filter(Boolean),
    nflogGroup: a['nflog-group'] as number,
    denyLogRate: a['deny-log-rate'] as string,
    debounceMs: a['debounce-ms'] as number,
    healthAddress: a['health-address'] as string,
    logLevel: a['log-level'] as string,
    hostFirewall: a['host-firewall'] as boolean,
    hostFirewallAudit: (a['host-firewall-audit'] as boolean | undefined) ?? false,
    failsafeInbound: parsePortRanges((a['failsafe-inbound'] as string | undefined) ?? DEFAULT_FAILSAFE_INBOUND),
    failsafeOutbound: parsePortRanges((a['failsafe-outbound'] as string | undefined) ?? DEFAULT_FAILSAFE_OUTBOUND),
    hostNetworkCgroupTemplates: ((a['host-network-cgroup-template'] as string[] | undefined) ?? [])
      .flatMap((s) => s.split(','))
      .map((s) => s.trim())
      .filter(Boolean),
    cgroupRoot: (a['cgroup-root'] as string | undefined) ?? '/sys/fs/cgroup',
    ipamSweepInterval: (a['ipam-sweep-interval'] as number | undefined) ?? 60,
    ipamSweepGrace: (a['ipam-sweep-grace'] as number | undefined) ?? 120,
    kernelCheckMinInterval: (a['kernel-check-min-interval'] as number | undefined) ?? 5,
    metadataGuard: (a['metadata-guard'] as boolean | undefined) ?? true,
    metadataGuardOptinLabel: (a['metadata-guard-optin-label'] as string | undefined) ?? DEFAULT_METADATA_OPTIN_LABEL,
  };
}
