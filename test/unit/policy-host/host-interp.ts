// A packet interpreter for the host hooks of a compiled Ruleset: runs a
// packet through the base chains of `input` or `output` in priority order,
// following jumps, gotos, verdict maps and set lookups. It knows exactly the
// rule forms the compiler emits (pod chains' and host chains') and throws on
// any other text, so a change in the compiler's output is noticed here. The
// pod-chain interpreter is test/unit/policy-compile/interp.ts, whose rule
// parser, set lookups, chain walk and common statements this one uses; this
// one adds interfaces, `socket cgroupv2`, `ct original`, protocol.port
// verdict maps.
import type { IpFamily } from '../../../src/ip.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import { addrOf, COMMON_FORMS, type CommonStmt, type Outcome, parseStatements, RulesetInterpreter, type Where } from '../policy-compile/interp.ts';

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
  | CommonStmt
  | { kind: 'vmapProtoPort'; map: string }
  | { kind: 'ifname'; dir: 'iif' | 'oif'; exact: boolean; name: string }
  | { kind: 'icmpv6' }
  | { kind: 'ctOriginal'; family: IpFamily; addr: string; port: number }
  | { kind: 'cgroup'; path: string };

const FORMS: ReadonlyArray<[RegExp, (m: RegExpMatchArray) => Stmt]> = [
  ...COMMON_FORMS,
  [/^meta l4proto \. th dport vmap @(\w+)/, (m) => ({ kind: 'vmapProtoPort', map: m[1] as string })],
  [
    /^meta l4proto tcp ct original (ip6?) daddr (\S+) ct original proto-dst (\d+)/,
    (m) => ({ kind: 'ctOriginal', family: m[1] === 'ip' ? 4 : 6, addr: m[2] as string, port: Number(m[3]) }),
  ],
  [/^(iif|oif) "lo"/, (m) => ({ kind: 'ifname', dir: m[1] as 'iif', exact: true, name: 'lo' })],
  [/^(iifname|oifname) "weir\*"/, (m) => ({ kind: 'ifname', dir: m[1] === 'iifname' ? 'iif' : 'oif', exact: false, name: 'weir' })],
  [/^icmpv6 type \{ [a-z0-9-]+(?:, [a-z0-9-]+)* \}/, () => ({ kind: 'icmpv6' })],
  [/^socket cgroupv2 level \d+ "([^"]+)"/, (m) => ({ kind: 'cgroup', path: m[1] as string })],
  [/^limit rate \d+\/(?:second|minute) burst \d+ packets log prefix "weir (?:deny|audit) (?:in|eg|host) \S+: " group \d+/, () => ({ kind: 'skip' })],
];

const parsed = new Map<string, Stmt[]>();
export function parseRule(text: string): Stmt[] {
  const hit = parsed.get(text);
  if (hit) return hit;
  const out = parseStatements(text, FORMS, 'host interpreter');
  parsed.set(text, out);
  return out;
}

export class HostDatapath extends RulesetInterpreter<HostPacket, Stmt> {
  constructor(rs: Ruleset) {
    super(rs, parseRule, 'host interpreter');
  }

  /** The verdict of `hook` for the packet, and the rule that gave it. */
  hook(hook: 'input' | 'output', pkt: HostPacket): { verdict: 'accept' | 'drop'; by: string } {
    const r = this.run(hook, pkt);
    return { verdict: r.verdict, by: r.trail.at(-1) ?? 'policy' };
  }

  protected override match(s: Stmt, pkt: HostPacket, where: Where): Outcome {
    switch (s.kind) {
      case 'vmapProtoPort': {
        const e = this.lookup(s.map, ['inet_proto', 'inet_service'], [pkt.proto, pkt.dport]);
        return e ? this.verdictOf(e.value, s.map) : false;
      }
      case 'ifname': {
        const name = s.dir === 'iif' ? pkt.iif : pkt.oif;
        if (name === undefined) throw new Error(`host interpreter: ${s.dir} needed by ${where.rule}`);
        return s.exact ? name === s.name : name.startsWith(s.name);
      }
      case 'icmpv6':
        return false; // the packets here are TCP, UDP or SCTP
      case 'ctOriginal':
        return pkt.proto === 'tcp' && where.dst.family === s.family && where.dst.value === addrOf(s.addr).value && pkt.dport === s.port;
      case 'cgroup':
        return pkt.cgroup === s.path;
      default:
        return super.match(s, pkt, where);
    }
  }
}
