// The rest of weir's table that is not NetworkPolicy: masquerade of pod
// traffic leaving the cluster. It lives in the same `inet weir` table so the
// agent's one atomic replacement covers it too.
import { type IpFamily, parseCidr } from '../ip.ts';
import { outermostCidrs } from '../ip-ranges.ts';
import { type Ruleset, RulesetBuilder } from './ruleset.ts';

export interface MasqueradeOptions {
  /** This node's pod CIDRs: the sources masqueraded. */
  podCIDRs: string[];
  /** Destinations never masqueraded: every node's pod CIDRs, plus configured ones (service CIDR, on-prem ranges…). */
  nonMasqueradeCIDRs: string[];
}

const fam = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');

/**
 * `masquerade` on postrouting at srcnat priority: pod traffic to anywhere but
 * the cluster's pods (and the configured exceptions) leaves with the node's
 * address, since the network beyond the node has no route back to pods.
 */
export function addMasquerade(rs: Ruleset, opts: MasqueradeOptions): void {
  const b = new RulesetBuilder(rs.table, rs);
  const chain = b.chain(
    'pod_masquerade',
    { type: 'nat', hook: 'postrouting', priority: 100, policy: 'accept' },
    'pod traffic leaving the cluster takes the node address',
  );
  const sources = opts.podCIDRs.map(parseCidr);
  const exceptions = opts.nonMasqueradeCIDRs.map(parseCidr);
  for (const f of [4, 6] as const) {
    const src = sources.filter((c) => c.family === f);
    if (src.length === 0) continue;
    const set = b.set(`nomasq${f}`, f === 4 ? 'ipv4_addr' : 'ipv6_addr', ['interval'], 'destinations that see pod addresses unchanged');
    // Nested CIDRs dropped: nft refuses overlapping elements in an interval set.
    for (const c of outermostCidrs(exceptions.filter((e) => e.family === f))) b.element(set, [`${c.address}/${c.prefix}`]);
    for (const s of src) b.rule(chain, `${fam(f)} saddr ${s.address}/${s.prefix} ${fam(f)} daddr != @${set} counter masquerade`, 'pods to outside the cluster');
  }
}
