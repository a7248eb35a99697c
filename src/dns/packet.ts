// The DNS message inside a queued packet (nfnetlink_queue hands packets
// over from the network header): IPv4 or IPv6, then UDP, or TCP with the
// two-byte length of RFC 1035 4.2.2. Pure and bounds-checked; a packet that
// does not hold one whole DNS message gives undefined and is let through
// unread (TCP segments that carry part of a message, IPv6 extension
// headers, fragments).

export interface DnsPacket {
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly protocol: 'udp' | 'tcp';
  readonly sport: number;
  readonly dport: number;
  /** The DNS message (a view into the packet). */
  readonly message: Uint8Array;
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

const u16 = (b: Uint8Array, o: number): number => (b[o] as number) * 256 + (b[o + 1] as number);

function v6(b: Uint8Array, o: number): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(u16(b, o + i).toString(16));
  // Canonical form is not needed here: callers compare through tryParseIp.
  return g.join(':');
}

/** The DNS message of an IP packet, or undefined when it holds none whole. */
export function dnsOfPacket(p: Uint8Array): DnsPacket | undefined {
  if (p.length < 1) return undefined;
  const version = (p[0] as number) >> 4;
  let family: 4 | 6;
  let proto: number;
  let l4: number;
  let end: number;
  let src: string;
  let dst: string;
  if (version === 4) {
    if (p.length < 20) return undefined;
    const ihl = ((p[0] as number) & 0x0f) * 4;
    end = Math.min(p.length, u16(p, 2));
    // A fragment (MF set or an offset) is not one whole datagram.
    if (ihl < 20 || end < ihl || (u16(p, 6) & 0x3fff) !== 0) return undefined;
    family = 4;
    proto = p[9] as number;
    l4 = ihl;
    src = `${p[12]}.${p[13]}.${p[14]}.${p[15]}`;
    dst = `${p[16]}.${p[17]}.${p[18]}.${p[19]}`;
  } else if (version === 6) {
    if (p.length < 40) return undefined;
    family = 6;
    proto = p[6] as number;
    l4 = 40;
    end = Math.min(p.length, 40 + u16(p, 4));
    src = v6(p, 8);
    dst = v6(p, 24);
  } else {
    return undefined;
  }
  if (proto === IPPROTO_UDP) {
    if (end < l4 + 8) return undefined;
    const len = u16(p, l4 + 4);
    if (len < 8 || l4 + len > end) return undefined;
    return { family, src, dst, protocol: 'udp', sport: u16(p, l4), dport: u16(p, l4 + 2), message: p.subarray(l4 + 8, l4 + len) };
  }
  if (proto === IPPROTO_TCP) {
    if (end < l4 + 20) return undefined;
    const data = l4 + ((p[l4 + 12] as number) >> 4) * 4;
    if (data < l4 + 20 || data + 2 > end) return undefined;
    const len = u16(p, data);
    if (len === 0 || data + 2 + len !== end) return undefined;
    return { family, src, dst, protocol: 'tcp', sport: u16(p, l4), dport: u16(p, l4 + 2), message: p.subarray(data + 2, end) };
  }
  return undefined;
}
