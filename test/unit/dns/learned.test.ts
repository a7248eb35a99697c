// Bookkeeping of learned addresses: TTLs clamped, expiry, refresh that only
// ever extends, and the caps per name and per node (new addresses refused
// and counted, learned ones never evicted early); and the DNS packet reader.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clampTtl, LearnedDomains } from '../../../src/dns/learned.ts';
import { dnsOfPacket } from '../../../src/dns/packet.ts';

const limits = { minTtlS: 5, maxTtlS: 3600, perName: 3, perNode: 5 };

describe('LearnedDomains', () => {
  it('clamps TTLs into [min, max]', () => {
    expect(clampTtl(0, limits)).toBe(5);
    expect(clampTtl(30, limits)).toBe(30);
    expect(clampTtl(2 ** 31, limits)).toBe(3600);
    expect(clampTtl(Number.NaN, limits)).toBe(5);
  });

  it('learns with expiry, refreshes only forward, and forgets at expiry', () => {
    const s = new LearnedDomains(limits);
    expect(s.learn('a.test', ['192.0.2.1'], 60, 0).kept).toEqual([{ address: '192.0.2.1', expiresAt: 60_000 }]);
    // A shorter TTL later does not shorten it; a longer one extends it.
    expect(s.learn('a.test', ['192.0.2.1'], 5, 1000).kept).toEqual([{ address: '192.0.2.1', expiresAt: 60_000 }]);
    expect(s.learn('a.test', ['192.0.2.1'], 120, 1000).kept).toEqual([{ address: '192.0.2.1', expiresAt: 121_000 }]);
    expect(s.domainAddresses(100_000)).toEqual(new Map([['a.test', ['192.0.2.1']]]));
    expect(s.expire(121_000)).toBe(1);
    expect(s.size).toBe(0);
    expect(s.domainAddresses(121_000).size).toBe(0);
  });

  it('caps per name and per node: new addresses refused and counted, learned ones kept', () => {
    const s = new LearnedDomains(limits);
    const r = s.learn('a.test', ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'], 60, 0);
    expect(r.kept.map((k) => k.address)).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    expect(r).toMatchObject({ overflow: 1, cap: 'name' });
    // A known address is still refreshed when the name is full.
    expect(s.learn('a.test', ['192.0.2.3'], 90, 0)).toMatchObject({ overflow: 0, kept: [{ address: '192.0.2.3', expiresAt: 90_000 }] });
    expect(s.learn('b.test', ['198.51.100.1', '198.51.100.2', '198.51.100.3'], 60, 0)).toMatchObject({ overflow: 1, cap: 'node' });
    expect(s.size).toBe(5);
    // Room again once entries expire.
    expect(s.learn('b.test', ['198.51.100.3'], 60, 60_000)).toMatchObject({ overflow: 0 });
    expect(s.size).toBe(2);
  });

  it('property: size never passes the caps, and what is kept is what was learned and not yet expired', () => {
    const op = fc.record({
      name: fc.constantFrom('a', 'b', 'c'),
      addrs: fc.array(
        fc.nat(9).map((n) => `192.0.2.${n}`),
        { maxLength: 4 },
      ),
      ttl: fc.nat(100),
      dt: fc.nat(20_000),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = new LearnedDomains(limits);
        const model = new Map<string, number>();
        let now = 0;
        for (const o of ops) {
          now += o.dt;
          for (const [k, at] of model) if (at <= now) model.delete(k);
          const r = s.learn(o.name, o.addrs, o.ttl, now);
          for (const k of r.kept) model.set(`${o.name} ${k.address}`, k.expiresAt);
          expect(s.size).toBeLessThanOrEqual(limits.perNode);
          expect(s.size).toBe(model.size);
          for (const e of s.entries(now)) expect(model.get(`${e.name} ${e.address}`)).toBe(e.expiresAt);
          for (const [, addrs] of s.domainAddresses(now)) expect(addrs.length).toBeLessThanOrEqual(limits.perName);
        }
      }),
    );
  });
});

/** An IPv4 + UDP packet around a payload. */
function udp4(payload: Buffer, sport = 53, dport = 40000): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[9] = 17;
  ip.set([10, 96, 0, 10], 12);
  ip.set([10, 244, 1, 5], 16);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, u, payload]);
}

describe('dnsOfPacket', () => {
  it('finds the message in UDP over IPv4 and in one whole TCP segment; not in a partial one or a fragment', () => {
    const msg = Buffer.from('abcdef');
    expect(dnsOfPacket(udp4(msg))).toMatchObject({ family: 4, src: '10.96.0.10', dst: '10.244.1.5', protocol: 'udp', sport: 53, dport: 40000 });
    expect(Buffer.from(dnsOfPacket(udp4(msg))?.message ?? [])).toEqual(msg);
    const frag = udp4(msg);
    frag.writeUInt16BE(0x2000, 6);
    expect(dnsOfPacket(frag)).toBeUndefined();
    const tcp = (len: number, body: Buffer) => {
      const ip = Buffer.alloc(20);
      ip[0] = 0x45;
      ip[9] = 6;
      const t = Buffer.alloc(20);
      t.writeUInt16BE(53, 0);
      t[12] = 5 << 4;
      const l = Buffer.alloc(2);
      l.writeUInt16BE(len);
      const p = Buffer.concat([ip, t, l, body]);
      p.writeUInt16BE(p.length, 2);
      return p;
    };
    expect(Buffer.from(dnsOfPacket(tcp(6, msg))?.message ?? [])).toEqual(msg);
    expect(dnsOfPacket(tcp(100, msg))).toBeUndefined();
  });

  it('IPv6 UDP; random bytes never throw', () => {
    const msg = Buffer.from('xyz');
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(8 + msg.length, 4);
    ip[6] = 17;
    ip[39] = 5;
    const u = Buffer.alloc(8);
    u.writeUInt16BE(53, 0);
    u.writeUInt16BE(8 + msg.length, 4);
    expect(dnsOfPacket(Buffer.concat([ip, u, msg]))).toMatchObject({ family: 6, dst: '0:0:0:0:0:0:0:5', protocol: 'udp' });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => void dnsOfPacket(b)),
      { numRuns: 2000 },
    );
  });
});
