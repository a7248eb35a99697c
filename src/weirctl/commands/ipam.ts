// weirctl ipam: the plugin's allocations (address, pod, container, host
// veth, age), free addresses per pod range (the conflist's podCIDRs), and
// leaks: records whose pod the API no longer has AND whose host veth is
// gone, and host veths of this network that no record owns.
import fs from 'node:fs';
import { type RecordPod, recordPod } from '../../agent/ipam-sweep.ts';
import { usage } from '../../ipam/allocator.ts';
import { PodRange } from '../../ipam/range.ts';
import type { AllocationRecord } from '../../ipam/store.ts';
import type { Link } from '../../netlink/link.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import { isHostVethName, parseHostVethAlias } from '../../plugin/names.ts';
import type { CommandResult, Context } from '../context.ts';
import { podKey, vethOf } from '../resolve.ts';
import { bigToJson, formatAge, paint, renderTable } from '../table.ts';

export interface Allocation {
  addresses: string[];
  /** `namespace/name` from the record (CNI_ARGS at ADD), when the runtime passed it. */
  pod: string | undefined;
  containerID: string;
  ifname: string;
  hostVeth: string;
  hostVethPresent: boolean;
  /** The pod is in the API (per the agent's /state), and is the same pod (uid) when the record has one. */
  podExists: boolean;
  /** present, absent (not in the API), replaced (another pod of that name now), unnamed (the runtime gave no pod). */
  podStatus: RecordPod;
  created: string;
  ageSeconds: number;
}

export interface OrphanVeth {
  name: string;
  index: number;
  alias?: string;
}

export interface IpamReport {
  network: string;
  dataDir: string;
  conflist: string | undefined;
  ranges: Array<{ range: string; size: number | string; used: number; free: number | string }>;
  allocations: Allocation[];
  warnings: string[];
  leaks: {
    /** Records whose pod is gone from the API and whose host veth is gone: safe to release. */
    records: Allocation[];
    /** Host veths of this network (alias `weir/<network>/…`) without a record. */
    veths: OrphanVeth[];
  };
}

/** `pods`: namespace/name of the API's pods, with their uid when known (a Set: names only). */
export function allocations(
  records: readonly AllocationRecord[],
  pods: ReadonlySet<string> | ReadonlyMap<string, string | undefined>,
  links: ReadonlySet<string>,
  now = Date.now(),
): Allocation[] {
  const byName: ReadonlyMap<string, string | undefined> = pods instanceof Map ? pods : new Map([...pods.keys()].map((k) => [k, undefined]));
  return records
    .map((r) => {
      const pod = r.podNamespace && r.podName ? `${r.podNamespace}/${r.podName}` : undefined;
      const podStatus = recordPod(r, byName);
      const veth = vethOf(r);
      return {
        addresses: [...r.addresses],
        pod,
        containerID: r.containerID,
        ifname: r.ifname,
        hostVeth: veth,
        hostVethPresent: links.has(veth),
        podExists: podStatus === 'present',
        podStatus,
        created: r.created,
        ageSeconds: Math.max(0, Math.round((now - Date.parse(r.created)) / 1000)),
      };
    })
    .sort((a, b) => (a.addresses[0] ?? '').localeCompare(b.addresses[0] ?? '', 'en', { numeric: true }));
}

/** The two kinds of leak (see IpamReport). */
export function findLeaks(allocs: readonly Allocation[], links: readonly Pick<Link, 'name' | 'index' | 'alias'>[], network: string): IpamReport['leaks'] {
  const records = allocs.filter((a) => !a.podExists && !a.hostVethPresent);
  const owned = new Set(allocs.map((a) => a.hostVeth));
  const veths = links
    .filter((l) => isHostVethName(l.name) && !owned.has(l.name) && parseHostVethAlias(l.alias)?.network === network)
    .map((l) => ({ name: l.name, index: l.index, ...(l.alias ? { alias: l.alias } : {}) }));
  return { records, veths };
}

export function formatIpam(r: IpamReport, color: boolean): string {
  const out: string[] = [`Network ${r.network}: IPAM store ${r.dataDir}/${r.network}${r.conflist ? `, ranges from ${r.conflist}` : ''}`];
  if (r.ranges.length > 0) {
    out.push(
      '',
      renderTable(
        ['RANGE', 'SIZE', 'USED', 'FREE'],
        r.ranges.map((x) => [x.range, String(x.size), String(x.used), String(x.free)]),
        { color },
      ),
    );
  }
  out.push('');
  if (r.allocations.length === 0) out.push('No allocations.');
  else {
    const rows = r.allocations.map((a) => [
      a.addresses.join('\n'),
      a.pod ? (a.podExists ? a.pod : `${a.pod} ${paint('(not in API)', 'yellow', color)}`) : '-',
      a.containerID.length > 16 ? `${a.containerID.slice(0, 13)}...` : a.containerID,
      a.hostVethPresent ? a.hostVeth : `${a.hostVeth} ${paint('(gone)', 'yellow', color)}`,
      formatAge(a.ageSeconds * 1000),
    ]);
    out.push(renderTable(['ADDRESS', 'POD', 'CONTAINER', 'HOST VETH', 'AGE'], rows, { color }));
  }
  out.push('');
  const orphans = r.allocations.filter((a) => a.podStatus !== 'present');
  if (orphans.length > 0) {
    out.push(paint(`Records without a pod: ${orphans.length}`, 'yellow', color));
    for (const a of orphans) out.push(`  ${a.addresses.join(', ')} (container ${a.containerID}): ${withoutPodReason(a)}`);
    out.push('');
  }
  for (const w of r.warnings) out.push(paint(`warning: ${w}`, 'yellow', color));
  const n = r.leaks.records.length + r.leaks.veths.length;
  if (n === 0) out.push(paint('Leaks: none', 'green', color));
  else {
    out.push(paint(`Leaks: ${n} (run \`weirctl gc\` to repair)`, 'red', color));
    for (const a of r.leaks.records)
      out.push(
        `  record ${a.addresses.join(', ')} of ${a.pod ?? 'an unnamed pod'} (container ${a.containerID}): the pod is not in the API and ${a.hostVeth} is gone`,
      );
    for (const v of r.leaks.veths) out.push(`  host veth ${v.name}${v.alias ? ` (${v.alias})` : ''}: no IPAM record owns it`);
  }
  return out.join('\n');
}

function withoutPodReason(a: Allocation): string {
  const who = a.pod ?? 'no pod recorded';
  const what =
    a.podStatus === 'absent'
      ? `${who} is not in the API`
      : a.podStatus === 'replaced'
        ? `${who} in the API is another pod (uid)`
        : 'the runtime did not name its pod';
  return `${what}; ${a.hostVethPresent ? `${a.hostVeth} still exists: the runtime's DEL is due` : `${a.hostVeth} is gone: a leak (weirctl gc, or the agent's sweep, frees it)`}`;
}

export function hostLinks(): Link[] {
  const h = NetlinkHandle.open();
  try {
    return h.linkList();
  } finally {
    h.close();
  }
}

/** Builds the report from the agent's /state, the store and the links of this namespace. */
export async function ipamReport(ctx: Context): Promise<IpamReport> {
  const state = await ctx.state();
  const conflist = ctx.requireConflist();
  const pods = new Map(state.pods.map((p) => [podKey(p), p.metadata?.uid]));
  const links = hostLinks();
  const store = ctx.store();
  const records = ctx.records();
  const allocs = allocations(records, pods, new Set(links.map((l) => l.name)));
  const ranges = conflist.podCIDRs.map((c) => PodRange.parse(c));
  const used = records.length === 0 ? ranges.map((rg) => ({ range: rg.cidr, size: rg.size, used: 0, free: rg.size })) : usage(store, ranges);
  return {
    network: ctx.opts.network,
    dataDir: ctx.dataDir(),
    conflist: conflist.file,
    ranges: used.map((u) => ({ range: u.range, size: bigToJson(u.size), used: u.used, free: bigToJson(u.free) })),
    allocations: allocs,
    warnings: fs.existsSync(store.dir) ? [] : [`no IPAM store at ${store.dir} (check --data-dir): every host veth of the network looks unowned`],
    leaks: findLeaks(allocs, links, ctx.opts.network),
  };
}

export async function runIpam(ctx: Context): Promise<CommandResult> {
  const report = await ipamReport(ctx);
  return { json: report, text: formatIpam(report, ctx.opts.color) };
}
