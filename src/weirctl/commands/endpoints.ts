// weirctl endpoints: the node's pods as the agent polices them (addresses,
// isolation per direction, the policies that select them), joined with the
// plugin's IPAM records (container, host veth) and the node's links.
import type { AllocationRecord } from '../../ipam/store.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import type { LocalEndpoint } from '../../policy/compile.ts';
import type { CommandResult, Context } from '../context.ts';
import { recordOfPod, vethOf } from '../resolve.ts';
import { paint, renderTable } from '../table.ts';

export interface EndpointDirection {
  isolated: boolean;
  /** The profile chain in `inet weir`, when isolated. */
  chain?: string;
  policies: string[];
}

export interface EndpointRow {
  namespace: string;
  name: string;
  ips: string[];
  containerID?: string;
  ifname?: string;
  /** From the IPAM record: hostVethName(containerID, ifname). */
  hostVeth?: string;
  /** Whether that link exists in this namespace; undefined when there is no record. */
  hostVethPresent?: boolean;
  ingress: EndpointDirection;
  egress: EndpointDirection;
}

export interface EndpointsReport {
  node: string;
  endpoints: EndpointRow[];
}

const dir = (d: LocalEndpoint['ingress']): EndpointDirection =>
  d ? { isolated: true, chain: d.chain, policies: [...d.policies] } : { isolated: false, policies: [] };

export function joinEndpoints(node: string, eps: readonly LocalEndpoint[], records: readonly AllocationRecord[], links: ReadonlySet<string>): EndpointsReport {
  const rows = eps.map((ep): EndpointRow => {
    const rec = recordOfPod(records, `${ep.namespace}/${ep.name}`);
    const row: EndpointRow = { namespace: ep.namespace, name: ep.name, ips: [...ep.ips], ingress: dir(ep.ingress), egress: dir(ep.egress) };
    if (rec) {
      const veth = vethOf(rec);
      Object.assign(row, { containerID: rec.containerID, ifname: rec.ifname, hostVeth: veth, hostVethPresent: links.has(veth) });
    }
    return row;
  });
  rows.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  return { node, endpoints: rows };
}

export function formatEndpoints(r: EndpointsReport, color: boolean): string {
  if (r.endpoints.length === 0) return `No pods of node ${r.node} are known to the agent.`;
  const iso = (d: EndpointDirection): string => (d.isolated ? paint('isolated', 'yellow', color) : 'open');
  const rows = r.endpoints.map((e) => {
    const veth = e.hostVeth === undefined ? '-' : e.hostVethPresent ? e.hostVeth : `${e.hostVeth} ${paint('(missing)', 'red', color)}`;
    const policies = [...new Set([...e.ingress.policies, ...e.egress.policies])];
    return [`${e.namespace}/${e.name}`, e.ips.join(', '), veth, iso(e.ingress), iso(e.egress), policies.length ? policies.join('\n') : '-'];
  });
  return `Node ${r.node}: ${r.endpoints.length} pod(s)\n${renderTable(['POD', 'ADDRESSES', 'HOST VETH', 'INGRESS', 'EGRESS', 'POLICIES'], rows, { color })}`;
}

/** Names of the links of the calling namespace. */
export function linkNames(): Set<string> {
  const h = NetlinkHandle.open();
  try {
    return new Set(h.linkList().map((l) => l.name));
  } finally {
    h.close();
  }
}

export async function runEndpoints(ctx: Context): Promise<CommandResult> {
  const eps = await ctx.endpoints();
  const report = joinEndpoints(eps.node, eps.endpoints, ctx.records(), linkNames());
  return { json: report, text: formatEndpoints(report, ctx.opts.color) };
}
