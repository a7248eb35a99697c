// A packet interpreter for the host hooks of a compiled Ruleset: runs a
// packet through the base chains of `input` or `output` in priority order,
// following jumps, gotos, verdict maps and set lookups. It knows exactly the
// rule forms the compiler emits (pod chains' and host chains') and throws on
// any other text, so a change in the compiler's output is noticed here. The
// pod-chain interpreter is test/unit/policy-compile/interp.ts (whose rule
// parser and set lookups this one uses); this one adds
// interfaces, `socket cgroupv2`, `ct original`, protocol.port verdict maps.
import type { IpFamily } from '../../../src/ip.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import { addrOf, parseStatements, RulesetInterpreter } from '../policy-compile/interp.ts';

export type L4 = 'tcp' | 'udp' | 'sctp';

export interface HostPacket {
  saddr: string;
  daddr: string;
  proto: L4;
  dport: number;
  ctState: 'new' | 'established';
  /** Input hook: the interface it came in on (`lo`, `weir1a2b`, `eth0`). */
  iif?: string;
  /** Output hook: the interface it leaves on. */
  oif?: string;
  /** Output hook: the cgroup v2 path of the sending socket, if any. */
  cgroup?: string;
}

type Stmt =
  | { kind: 'addr'; family: IpFamily; field: 'saddr' | 'daddr'; set: string }
  | { kind: 'vmapAddr'; family: IpFamily; field: 'saddr' | 'daddr'; map: string }
  | { kind: 'protoPort'; set: string }
  | { kind: 'vmapProtoPort'; map: string }
  | { kind: 'addrProtoPort'; family: IpFamily; set: string }
  | { kind: 'ct'; states: string[] }
  | { kind: 'tcpNotSyn' }
  | { kind: 'ifname'; dir: 'iif' | 'oif'; exact: boolean; name: string }
  | { kind: 'icmpv6' }
  | { kind: 'ctOriginal'; family: IpFamily; addr: string; port: number }
  | { kind: 'cgroup'; path: string }
  | { kind: 'skip' }
  | { kind: 'verdict'; verdict: 'accept' | 'drop' }
  | { kind: 'jump' | 'goto'; chain: string };

const fam = (s: string): IpFamily => (s === 'ip' ? 4 : 6);
const FORMS: Array<[RegExp, (m: RegExpMatchArray) => Stmt]> = [
  [/^(ip6?) (saddr|daddr) vmap @(\w+)/, (m) => ({ kind: 'vmapAddr', family: fam(m[1] as string), field: m[2] as 'saddr', map: m[3] as string })],
  [/^(ip6?) daddr \. meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'addrProtoPort', family: fam(m[1] as string), set: m[2] as string })],
  [/^(ip6?) (saddr|daddr) @(\w+)/, (m) => ({ kind: 'addr', family: fam(m[1] as string), field: m[2] as 'saddr', set: m[3] as string })],
  [/^meta l4proto \. th dport vmap @(\w+)/, (m) => ({ kind: 'vmapProtoPort', map: m[1] as string })],
  [/^meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'protoPort', set: m[1] as string })],
  [
    /^meta l4proto tcp ct original (ip6?) daddr (\S+) ct original proto-dst (\d+)/,
    (m) => ({ kind: 'ctOriginal', family: fam(m[1] as string), addr: m[2] as string, port: Number(m[3]) }),
  ],
  [/^ct state ((?:new|established|related|invalid)(?:,(?:new|established|related|invalid))*)/, (m) => ({ kind: 'ct', states: (m[1] as string).split(',') })],
  [/^tcp flags & \(syn \| ack\) != syn/, () => ({ kind: 'tcpNotSyn' })],
  [/^(iif|oif) "lo"/, (m) => ({ kind: 'ifname', dir: m[1] as 'iif', exact: true, name: 'lo' })],
  [/^(iifname|oifname) "weir\*"/, (m) => ({ kind: 'ifname', dir: m[1] === 'iifname' ? 'iif' : 'oif', exact: false, name: 'weir' })],
  [/^icmpv6 type \{ [a-z0-9-]+(?:, [a-z0-9-]+)* \}/, () => ({ kind: 'icmpv6' })],
  [/^socket cgroupv2 level \d+ "([^"]+)"/, (m) => ({ kind: 'cgroup', path: m[1] as string })],
  [/^limit rate \d+\/(?:second|minute) burst \d+ packets log prefix "weir (?:deny|audit) (?:in|eg|host) \S+: " group \d+/, () => ({ kind: 'skip' })],
  [/^counter/, () => ({ kind: 'skip' })],
  [/^(accept|drop)$/, (m) => ({ kind: 'verdict', verdict: m[1] as 'accept' })],
  [/^(jump|goto) (\w+)$/, (m) => ({ kind: m[1] as 'jump', chain: m[2] as string })],
];

const parsed = new Map<string, Stmt[]>();
export function parseRule(text: string): Stmt[] {
  const hit = parsed.get(text);
  if (hit) return hit;
  const out = parseStatements(text, FORMS, 'host interpreter');
  parsed.set(text, out);
  return out;
}

export class HostDatapath extends RulesetInterpreter {
  constructor(rs: Ruleset) {
    super(rs, parseRule);
  }

  /** The verdict of `hook` for the packet, and the rule that gave it. */
  hook(hook: 'input' | 'output', pkt: HostPacket): { verdict: 'accept' | 'drop'; by: string } {
    const bases = [...this.rs.chains.values()].filter((c) => c.def.hook === hook).sort((a, b) => Number(a.def.priority) - Number(b.def.priority));
    let by = 'policy';
    for (const b of bases) {
      const r = this.#chain(b.def.name, pkt, 0);
      if (r.kind === 'continue') continue;
      by = r.by;
      if (r.kind === 'drop') return { verdict: 'drop', by };
    }
    return { verdict: 'accept', by };
  }

  #chain(name: string, pkt: HostPacket, depth: number): { kind: 'accept' | 'drop'; by: string } | { kind: 'continue' } {
    if (depth > 16) throw new Error(`host interpreter: too deep at ${name}`);
    const c = this.rs.chains.get(name);
    if (!c) throw new Error(`host interpreter: no chain ${name}`);
    const src = addrOf(pkt.saddr);
    const dst = addrOf(pkt.daddr);
    for (const r of c.rules) {
      const by = `${name}: ${r.rule}`;
      let matched = true;
      let action: { kind: 'accept' | 'drop' } | { kind: 'jump' | 'goto'; chain: string } | undefined;
      const verdictOf = (v: string | undefined): typeof action => {
        const m = /^(accept|drop)$|^(jump|goto) (\w+)$/.exec(v ?? '');
        if (!m) throw new Error(`host interpreter: unknown verdict ${String(v)}`);
        return m[1] ? { kind: m[1] as 'accept' } : { kind: m[2] as 'jump', chain: m[3] as string };
      };
      for (const s of parseRule(r.rule)) {
        if (!matched) break;
        switch (s.kind) {
          case 'addr': {
            const a = s.field === 'saddr' ? src : dst;
            matched = a.family === s.family && this.lookup(s.set, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'], [a.value]) !== undefined;
            break;
          }
          case 'addrProtoPort':
            matched =
              dst.family === s.family &&
              this.lookup(s.set, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr', 'inet_proto', 'inet_service'], [dst.value, pkt.proto, pkt.dport]) !== undefined;
            break;
          case 'protoPort':
            matched = this.lookup(s.set, ['inet_proto', 'inet_service'], [pkt.proto, pkt.dport]) !== undefined;
            break;
          case 'vmapProtoPort': {
            const e = this.lookup(s.map, ['inet_proto', 'inet_service'], [pkt.proto, pkt.dport]);
            if (!e) matched = false;
            else action = verdictOf(e.value);
            break;
          }
          case 'vmapAddr': {
            const a = s.field === 'saddr' ? src : dst;
            const e = a.family === s.family ? this.lookup(s.map, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'], [a.value]) : undefined;
            if (!e) matched = false;
            else action = verdictOf(e.value);
            break;
          }
          case 'ct':
            matched = s.states.includes(pkt.ctState);
            break;
          case 'tcpNotSyn':
            matched = false; // new connections start with a SYN
            break;
          case 'ifname': {
            const name = s.dir === 'iif' ? pkt.iif : pkt.oif;
            if (name === undefined) throw new Error(`host interpreter: ${s.dir} needed by ${r.rule}`);
            matched = s.exact ? name === s.name : name.startsWith(s.name);
            break;
          }
          case 'icmpv6':
            matched = false; // the packets here are TCP, UDP or SCTP
            break;
          case 'ctOriginal':
            matched = pkt.proto === 'tcp' && dst.family === s.family && dst.value === addrOf(s.addr).value && pkt.dport === s.port;
            break;
          case 'cgroup':
            matched = pkt.cgroup === s.path;
            break;
          case 'skip':
            break;
          case 'verdict':
            action = { kind: s.verdict };
            break;
          case 'jump':
          case 'goto':
            action = { kind: s.kind, chain: s.chain };
            break;
        }
      }
      if (!matched || !action) continue;
      if (!('chain' in action)) return { kind: action.kind, by };
      const sub = this.#chain(action.chain, pkt, depth + 1);
      if (action.kind === 'goto' || sub.kind !== 'continue') return sub;
    }
    return { kind: 'continue' };
  }
}
