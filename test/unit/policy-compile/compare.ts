// The comparison behind the datapath tests: every connection between the
// pods, nodes and outside addresses of a cluster, judged by the reference
// evaluator and by the interpreter (interp.ts) over the compiled ruleset of
// each node on the packet's path.
//
// The path of a packet (see the header of src/policy/compile.ts): a pod's
// packet crosses the forward hook of its own node, then that of the
// destination pod's node when it is another one; a packet from outside
// crosses only the destination pod's node. A pod's packet to its own node
// crosses that node's input hook (where the ClusterNetworkPolicy tiers judge
// it); its own node's packet to it takes the output hook, which weir leaves
// alone (host firewall off), so the evaluator must allow it. A pod to
// itself is never routed; skipped. Every packet a node receives meets its
// prerouting hook first (the metadata guard, src/policy/metadata-guard.ts),
// on each node of the path; the cloud metadata addresses are among the
// outside addresses.
import type { IpFamily } from '../../../src/ip.ts';
import { type CompileOptions, compilePolicies } from '../../../src/policy/compile.ts';
import {
  type ClusterState,
  type Connection,
  type Endpoint,
  ipEndpoint,
  PolicyEvaluator,
  type Protocol,
  podEndpoint,
  type Verdict,
} from '../../../src/policy/index.ts';
import { METADATA_ADDRESSES } from '../../../src/policy/metadata-guard.ts';
import { EXTERNAL_IPS, NODE_IPS, NODES } from './cluster.ts';
import { Datapath, type HookResult, type L4, type Packet } from './interp.ts';

export const PORTS: Array<[Protocol, number]> = [
  ['TCP', 80],
  ['TCP', 8080],
  ['UDP', 53],
  ['TCP', 5353],
  ['TCP', 9090],
  ['TCP', 8500],
  ['SCTP', 9999],
  ['UDP', 8080],
];

/** A connection end: a pod (with its node), a node address (node IP or hostNetwork pod), or another address. */
type End =
  | { kind: 'pod'; ep: Endpoint; node: string; ips: Map<IpFamily, string>; label: string }
  | { kind: 'node'; ep: Endpoint; node: string; ips: Map<IpFamily, string>; label: string }
  | { kind: 'ext'; ep: Endpoint; ips: Map<IpFamily, string>; label: string };

const fams = (ips: readonly string[]): Map<IpFamily, string> => new Map(ips.map((ip) => [ip.includes(':') ? 6 : 4, ip] as [IpFamily, string]));

export function ends(state: ClusterState): End[] {
  const out: End[] = [];
  for (const p of state.pods) {
    const ns = p.metadata?.namespace as string;
    const name = p.metadata?.name as string;
    const node = p.spec?.nodeName as string;
    const ips = (p.status?.podIPs ?? []).map((x) => x.ip);
    const label = `${ns}/${name}`;
    if (ips.length === 0) continue;
    if (p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded') {
      // A terminated pod's old address is a plain address (evaluator: "their old IPs are plain addresses").
      for (const ip of ips) out.push({ kind: 'ext', ep: ipEndpoint(ip), ips: fams([ip]), label: `${label}(dead) ${ip}` });
    } else if (p.spec?.hostNetwork)
      out.push({ kind: 'node', ep: podEndpoint(ns, name), node, ips: fams(NODE_IPS[node] as string[]), label: `${label}(hostNetwork)` });
    else out.push({ kind: 'pod', ep: podEndpoint(ns, name), node, ips: fams(ips), label });
  }
  for (const n of NODES)
    for (const ip of NODE_IPS[n] as string[]) out.push({ kind: 'node', ep: ipEndpoint(ip), node: n, ips: fams([ip]), label: `node ${n} ${ip}` });
  for (const ip of [...EXTERNAL_IPS, ...Object.values(METADATA_ADDRESSES)]) out.push({ kind: 'ext', ep: ipEndpoint(ip), ips: fams([ip]), label: ip });
  return out;
}

export interface Mismatch {
  conn: string;
  evaluator: boolean;
  datapath: boolean | 'not routed';
  detail: string;
}

/** A packet through one node: its prerouting hook, then `hook` if prerouting let it by. */
function throughNode(dp: Datapath, hook: string, pkt: Packet): HookResult {
  const pre = dp.hook('prerouting', pkt);
  if (pre.verdict === 'drop') return pre;
  const r = dp.hook(hook, pkt);
  return { verdict: r.verdict, trail: [...pre.trail, ...r.trail] };
}

/** Every connection between the ends of `state`, judged both ways; returns the disagreements. */
export function compare(
  state: ClusterState,
  limit = 5,
  opts: Omit<CompileOptions, 'nodeName'> = {},
  seen?: (v: Verdict) => void,
): { mismatches: Mismatch[]; judged: number } {
  const evaluator = new PolicyEvaluator(state, { metadataGuard: opts.metadataGuard });
  const dp = new Map<string, Datapath>(NODES.map((n) => [n, new Datapath(compilePolicies(state, { ...opts, nodeName: n }).ruleset)]));
  const all = ends(state);
  const mismatches: Mismatch[] = [];
  let judged = 0;
  for (const a of all) {
    for (const b of all) {
      if (a === b || (a.kind !== 'pod' && b.kind !== 'pod')) continue;
      for (const [f, saddr] of a.ips) {
        const daddr = b.ips.get(f);
        if (daddr === undefined) continue;
        // A pod to its own node: that node's input hook. Its own node to a pod: the output hook, not policed.
        const toOwnNode = a.kind === 'pod' && b.kind === 'node' && b.node === a.node;
        const fromOwnNode = b.kind === 'pod' && a.kind === 'node' && a.node === b.node;
        const path = [...new Set([a.kind === 'pod' ? a.node : undefined, b.kind === 'pod' ? b.node : undefined].filter((n): n is string => n !== undefined))];
        const hook = toOwnNode ? 'input' : 'forward';
        for (const [protocol, port] of PORTS) {
          const conn: Connection = { src: a.ep, dst: b.ep, protocol, port, family: f };
          const v = evaluator.evaluate(conn);
          seen?.(v);
          judged++;
          let got: boolean | 'not routed';
          let results: { n: string; r: HookResult }[] = [];
          if (fromOwnNode) got = 'not routed';
          else {
            const pkt: Packet = { saddr, daddr, proto: protocol.toLowerCase() as L4, dport: port, ctState: 'new' };
            results = (toOwnNode ? [a.node] : path).map((n) => ({ n, r: throughNode(dp.get(n) as Datapath, hook, pkt) }));
            got = results.every((x) => x.r.verdict === 'accept');
          }
          const want = v.allowed;
          if ((got === 'not routed' && !want) || (got !== 'not routed' && got !== want)) {
            // The trails are written out only for a disagreement: most connections agree.
            const detail = results.map((x) => `${x.n} ${hook}: ${x.r.verdict} [${x.r.trail.join(' | ')}]`).join('; ');
            const why = `egress ${v.egress.allowed} ${JSON.stringify(v.egress.reasons)}, ingress ${v.ingress.allowed} ${JSON.stringify(v.ingress.reasons)}`;
            mismatches.push({
              conn: `${a.label} -> ${b.label} ${protocol}/${port} (IPv${f} ${saddr} -> ${daddr})`,
              evaluator: want,
              datapath: got,
              detail: `${detail}; evaluator: ${why}`,
            });
            if (mismatches.length >= limit) return { mismatches, judged };
          }
        }
      }
    }
  }
  return { mismatches, judged };
}
