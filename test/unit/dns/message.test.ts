// The DNS response parser: answers encoded by a test encoder (with and
// without compression) read back as written, CNAME chains resolve to the
// addresses at their end with the smallest TTL, and hostile bytes (random,
// cut, mutated, pointer loops) give a DnsParseError or an answer, never an
// exception of another kind, a hang, or a record outside the message.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DnsParseError, ipv6Text, parseResponse, readName, resolutions } from '../../../src/dns/message.ts';
import { encodeResponse, type Rec } from './encode.ts';

describe('parseResponse', () => {
  it('reads questions and A, AAAA and CNAME answers, skipping other types; names in lower case', () => {
    const msg = encodeResponse(
      ['WWW.Example.COM'],
      [
        { name: 'www.example.com', type: 'CNAME', ttl: 300, data: 'edge.CDN.net' },
        { name: 'edge.cdn.net', type: 'A', ttl: 60, data: '203.0.113.7' },
        { name: 'edge.cdn.net', type: 'AAAA', ttl: 30, data: '2001:db8::7' },
        { name: 'edge.cdn.net', type: 'TXT', ttl: 30, data: 'hello' },
      ],
      { compress: true },
    );
    const r = parseResponse(msg);
    expect(r).toMatchObject({ id: 0x1234, rcode: 0, truncated: false, questions: ['www.example.com'] });
    expect(r.answers).toEqual([
      { name: 'www.example.com', type: 5, ttl: 300, data: 'edge.cdn.net' },
      { name: 'edge.cdn.net', type: 1, ttl: 60, data: '203.0.113.7' },
      { name: 'edge.cdn.net', type: 28, ttl: 30, data: '2001:db8::7' },
    ]);
  });

  it('refuses a query, another opcode, and a message cut anywhere', () => {
    const ok = encodeResponse(['a.test'], [{ name: 'a.test', type: 'A', ttl: 5, data: '192.0.2.1' }]);
    const query = Buffer.from(ok);
    query[2] = (query[2] as number) & 0x7f;
    expect(() => parseResponse(query)).toThrow(/not a response/);
    const opcode = Buffer.from(ok);
    opcode[2] = (opcode[2] as number) | 0x10;
    expect(() => parseResponse(opcode)).toThrow(/opcode/);
    for (let n = 0; n < ok.length; n++) expect(() => parseResponse(ok.subarray(0, n))).toThrow(DnsParseError);
  });

  it('refuses compression pointers that do not go backwards (loops)', () => {
    // A question whose name is a pointer to itself, then one to a later offset.
    const self = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(() => parseResponse(self)).toThrow(/does not point backwards/);
    // `a` then a pointer back to the `a` label: a loop through a label.
    const loop = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0xc0, 12, 0, 1, 0, 1]);
    expect(() => parseResponse(loop)).toThrow(/does not point backwards/);
  });

  it('a TTL with the top bit set counts as zero; names past 255 bytes are refused', () => {
    const r = parseResponse(encodeResponse(['a.test'], [{ name: 'a.test', type: 'A', ttl: 0x80000001, data: '192.0.2.1' }]));
    expect(r.answers[0]?.ttl).toBe(0);
    const long = Array.from({ length: 5 }, () => 'x'.repeat(60)).join('.');
    expect(() => parseResponse(encodeResponse([long], []))).toThrow(/longer than 255/);
  });

  it('escapes label bytes that would otherwise make two names equal', () => {
    const dotted = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1]);
    expect(parseResponse(dotted).questions).toEqual(['a\\046b']);
    expect(readName(Buffer.from([1, 0x00, 0]), 0).name).toBe('\\000');
  });

  it('ipv6Text is RFC 5952', () => {
    const b = (s: string) => Uint8Array.from(Buffer.from(s.replace(/:/g, ''), 'hex'));
    expect(ipv6Text(b('2001:0db8:0000:0000:0000:0000:0000:0001'))).toBe('2001:db8::1');
    expect(ipv6Text(b('0000:0000:0000:0000:0000:0000:0000:0000'))).toBe('::');
    expect(ipv6Text(b('2001:0db8:0000:0001:0000:0000:0000:0001'))).toBe('2001:db8:0:1::1');
    expect(ipv6Text(b('2001:0db8:0001:0000:0001:0000:0001:0001'))).toBe('2001:db8:1:0:1:0:1:1');
  });
});

describe('resolutions', () => {
  it('a CNAME chain gives its end addresses to every name on it, with the smallest TTL', () => {
    const r = resolutions(
      parseResponse(
        encodeResponse(
          ['www.shop.test'],
          [
            { name: 'www.shop.test', type: 'CNAME', ttl: 300, data: 'shop.cdn.test' },
            { name: 'shop.cdn.test', type: 'CNAME', ttl: 20, data: 'edge1.cdn.test' },
            { name: 'edge1.cdn.test', type: 'A', ttl: 60, data: '203.0.113.2' },
            { name: 'edge1.cdn.test', type: 'A', ttl: 40, data: '203.0.113.1' },
            { name: 'unrelated.test', type: 'A', ttl: 60, data: '198.51.100.1' },
          ],
          { compress: true },
        ),
      ),
    );
    const addrs = ['203.0.113.1', '203.0.113.2'];
    expect(r).toEqual([
      { name: 'www.shop.test', addresses: addrs, ttl: 20 },
      { name: 'shop.cdn.test', addresses: addrs, ttl: 20 },
      { name: 'edge1.cdn.test', addresses: addrs, ttl: 20 },
    ]);
  });

  it('a CNAME loop, NXDOMAIN and a chain without addresses teach nothing', () => {
    const loop = encodeResponse(
      ['a.test'],
      [
        { name: 'a.test', type: 'CNAME', ttl: 5, data: 'b.test' },
        { name: 'b.test', type: 'CNAME', ttl: 5, data: 'a.test' },
      ],
    );
    expect(resolutions(parseResponse(loop))).toEqual([]);
    expect(resolutions(parseResponse(encodeResponse(['a.test'], [{ name: 'a.test', type: 'A', ttl: 5, data: '192.0.2.1' }], { rcode: 3 })))).toEqual([]);
  });

  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
  const rec: fc.Arbitrary<Rec> = fc.oneof(
    fc.record({ name, type: fc.constant('A' as const), ttl: fc.nat(0x7fffffff), data: ipv4 }),
    fc.record({ name, type: fc.constant('CNAME' as const), ttl: fc.nat(0x7fffffff), data: name }),
  );

  it('round trip: what the encoder wrote (compressed or not) is what the parser reads', () => {
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 3 }), fc.array(rec, { maxLength: 12 }), fc.boolean(), (qs, recs, compress) => {
        const r = parseResponse(encodeResponse(qs, recs, { compress }));
        expect(r.questions).toEqual(qs);
        expect(r.answers.map((a) => ({ name: a.name, type: a.type === 1 ? 'A' : 'CNAME', ttl: a.ttl, data: a.data }))).toEqual(recs);
        for (const x of resolutions(r)) {
          expect(x.addresses.length).toBeGreaterThan(0);
          for (const a of x.addresses) expect(recs.some((y) => y.type === 'A' && y.data === a)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('hostile bytes: random, or a real answer mutated, give an answer or a DnsParseError, never anything else', () => {
    const check = (bytes: Uint8Array) => {
      try {
        const r = parseResponse(bytes);
        resolutions(r);
        for (const a of r.answers) expect(a.name.length).toBeLessThan(4 * 256);
      } catch (e) {
        expect(e).toBeInstanceOf(DnsParseError);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(b)),
      { numRuns: 2000 },
    );
    const base = encodeResponse(
      ['www.shop.test'],
      [
        { name: 'www.shop.test', type: 'CNAME', ttl: 300, data: 'shop.cdn.test' },
        { name: 'shop.cdn.test', type: 'A', ttl: 60, data: '203.0.113.2' },
      ],
      { compress: true },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { minLength: 1, maxLength: 6 }), (edits) => {
        const b = Buffer.from(base);
        for (const [i, v] of edits) b[i] = v;
        check(b);
      }),
      { numRuns: 2000 },
    );
  });
});
