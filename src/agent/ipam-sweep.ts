// IPAM = pods: the agent's own sweep of the plugin's IPAM store. The runtime
// drives CNI GC with the attachments it knows (containerd does, on its own
// schedule, and not every runtime does); the agent frees what a runtime left
// behind without waiting for that: a record whose container is gone.
//
// "Gone", from what the agent can see: the record's host veth no longer
// exists (the plugin names it from the container ID and interface, so a
// live attachment always has it) AND its pod is not in the API (by
// namespace/name, and by uid when the record has one), or the same pod has a
// newer record whose veth is up (its sandbox was made again without a DEL).
// A record younger than the grace period is left alone: ADD reserves the
// address before it wires the veth. A pod deleted from the API while its
// veth still exists is left for the runtime's DEL: freeing that address now
// could hand it to a new pod while the old one still answers on it.
//
// The decision and the release happen under the store's lock (re-entrant in
// one process), so no ADD or DEL changes the records in between; the release
// itself is the CNI GC verb's collectGarbage() (plugin/gc.ts).
import type { AllocationRecord, Store } from '../ipam/store.ts';
import type { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { collectGarbage } from '../plugin/gc.ts';
import { hostVethName } from '../plugin/names.ts';

/** How a record relates to the API's pods: its pod is there, is not, or is another pod of the same name now. */
export type RecordPod = 'present' | 'absent' | 'replaced' | 'unnamed';

/** `pods`: namespace/name -> uid (undefined when unknown). */
export function recordPod(r: AllocationRecord, pods: ReadonlyMap<string, string | undefined>): RecordPod {
  if (!r.podNamespace || !r.podName) return 'unnamed';
  const key = `${r.podNamespace}/${r.podName}`;
  if (!pods.has(key)) return 'absent';
  const uid = pods.get(key);
  return r.podUid && uid && r.podUid !== uid ? 'replaced' : 'present';
}

export interface SweepInput {
  records: readonly AllocationRecord[];
  pods: ReadonlyMap<string, string | undefined>;
  /** Names of the links in the host namespace. */
  links: ReadonlySet<string>;
  now: number;
  graceMs: number;
}

export interface SweepDecision {
  record: AllocationRecord;
  reason: string;
}

/** The records to free, each with why (pure). */
export function recordsToFree(i: SweepInput): SweepDecision[] {
  const live = new Set<string>();
  for (const r of i.records)
    if (i.links.has(hostVethName(r.containerID, r.ifname)) && r.podNamespace && r.podName) live.add(`${r.podNamespace}/${r.podName}/${r.podUid ?? ''}`);
  const out: SweepDecision[] = [];
  for (const r of i.records) {
    const veth = hostVethName(r.containerID, r.ifname);
    if (i.links.has(veth) || i.now - Date.parse(r.created) < i.graceMs) continue;
    const pod = recordPod(r, i.pods);
    const who = r.podNamespace && r.podName ? `${r.podNamespace}/${r.podName}` : 'an unnamed pod';
    if (pod === 'present') {
      // The same pod wired again under another container: this sandbox is gone.
      if (live.has(`${r.podNamespace}/${r.podName}/${r.podUid ?? ''}`))
        out.push({ record: r, reason: `${who} runs in another sandbox; ${veth} of container ${r.containerID} is gone` });
      continue;
    }
    const why = pod === 'absent' ? 'is not in the API' : pod === 'replaced' ? 'is another pod (uid) in the API now' : 'is not recorded';
    out.push({ record: r, reason: `${who} ${why} and ${veth} is gone` });
  }
  return out;
}

export interface SweepReport {
  released: SweepDecision[];
}

/** Decides and releases under the store's lock; `host` lists the links (and would remove released veths). */
export function sweepIpam(
  store: Store,
  network: string,
  pods: ReadonlyMap<string, string | undefined>,
  host: NetlinkHandle,
  o: { graceMs: number; now?: number },
): SweepReport {
  return store.withLock(() => {
    const records = store.list();
    const links = new Set(host.linkList().map((l) => l.name));
    const free = recordsToFree({ records, pods, links, now: o.now ?? Date.now(), graceMs: o.graceMs });
    if (free.length === 0) return { released: [] };
    const gone = new Set(free.map((d) => d.record));
    const keep = records.filter((r) => !gone.has(r)).map((r) => ({ containerID: r.containerID, ifname: r.ifname }));
    collectGarbage(store, network, keep, { host });
    return { released: free };
  });
}
