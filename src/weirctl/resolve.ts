// Lookups several commands need: which pod holds an address (from the
// agent's /state), which policies a profile chain stands for (from
// /endpoints), and which IPAM record and host veth belong to a pod. Pure.
import { formatIp, tryParseIp } from '../ip.ts';
import type { AllocationRecord } from '../ipam/store.ts';
import { hostVethName } from '../plugin/names.ts';
import type { LocalEndpoint } from '../policy/compile.ts';
import type { ClusterState, Pod } from '../policy/types.ts';

export const podKey = (p: { metadata?: { namespace?: string; name?: string } }): string => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

/** Canonical text of an address (`fd00::1`, not `fd00:0::1`), or the input when it does not parse. */
export function canonical(ip: string): string {
  const b = tryParseIp(ip);
  return b ? formatIp(b.bytes) : ip;
}

export function podIps(p: Pod): string[] {
  const st = p.status ?? {};
  const list = st.podIPs && st.podIPs.length > 0 ? st.podIPs.map((x) => x?.ip) : [st.podIP];
  return list.filter((x): x is string => typeof x === 'string' && x !== '').map(canonical);
}

/** Address -> `namespace/name` of the live, non-hostNetwork pod holding it. */
export function podByIp(state: Pick<ClusterState, 'pods'>): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of state.pods) {
    if (p.spec?.hostNetwork === true || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    for (const ip of podIps(p)) if (!out.has(ip)) out.set(ip, podKey(p));
  }
  return out;
}

/** Address -> node name, for the nodes' own addresses (to name a drop's node peer). */
export function nodeByIp(state: Pick<ClusterState, 'nodes'>): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of state.nodes ?? []) for (const ip of n.internalIPs ?? []) out.set(canonical(ip), n.name);
  return out;
}

export interface ChainInfo {
  direction: 'ingress' | 'egress';
  /** `namespace/name` of the policies whose union the profile chain enforces. */
  policies: string[];
  /** The local pods sharing this profile. */
  pods: string[];
}

/** Profile chain (`prof_…_in` / `prof_…_eg`) -> the policies it enforces and the pods using it. */
export function chainIndex(endpoints: readonly LocalEndpoint[]): Map<string, ChainInfo> {
  const out = new Map<string, ChainInfo>();
  for (const ep of endpoints) {
    for (const d of ['ingress', 'egress'] as const) {
      const prof = ep[d];
      if (!prof) continue;
      const info = out.get(prof.chain) ?? { direction: d, policies: [...prof.policies], pods: [] };
      info.pods.push(`${ep.namespace}/${ep.name}`);
      out.set(prof.chain, info);
    }
  }
  return out;
}

/** The record of a pod (by namespace/name), newest first when a pod has several (a sandbox restart). */
export function recordOfPod(records: readonly AllocationRecord[], key: string): AllocationRecord | undefined {
  const mine = records.filter((r) => `${r.podNamespace ?? ''}/${r.podName ?? ''}` === key);
  return mine.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0))[0];
}

/** The record holding an address. */
export function recordOfIp(records: readonly AllocationRecord[], ip: string): AllocationRecord | undefined {
  const c = canonical(ip);
  return records.find((r) => r.addresses.some((a) => canonical(a) === c));
}

export const vethOf = (r: Pick<AllocationRecord, 'containerID' | 'ifname'>): string => hostVethName(r.containerID, r.ifname);

/** `NAMESPACE/NAME` split, or undefined when the text is not of that form. */
export function parsePodRef(s: string): { namespace: string; name: string } | undefined {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(s.trim());
  return m ? { namespace: m[1] as string, name: m[2] as string } : undefined;
}
