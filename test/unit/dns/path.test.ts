// The agent's DNS path against a fake kernel: what an answer makes it write
// (only names a policy lists, to the sets they match, with the TTL as the
// timeout, never shortening what is there), what a full sync writes again,
// a failed write retried, caps counted, and every answer accepted.
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DnsPath } from '../../../src/agent/dns.ts';
import { type DnsKernelOps, learnedFromListing, type TimedAddress } from '../../../src/agent/dns-kernel.ts';
import { NF_ACCEPT } from '../../../src/netlink/nfqueue.ts';
import type { DnsPlan } from '../../../src/policy/cnp-dns.ts';
import { encodeResponse } from './encode.ts';

class FakeKernel implements DnsKernelOps {
  installs = 0;
  subjects: ReadonlyMap<4 | 6, ReadonlySet<string>> = new Map();
  writes: TimedAddress[][] = [];
  failNext = false;
  install(): void {
    this.installs++;
  }
  failSubjects = false;
  setSubjects(want: ReadonlyMap<4 | 6, ReadonlySet<string>>): number {
    if (this.failSubjects) throw new Error('ENOENT');
    this.subjects = want;
    return 0;
  }
  addAddresses(adds: readonly TimedAddress[]): Map<string, number> {
    this.writes.push([...adds]);
    if (!this.failNext) return new Map();
    this.failNext = false;
    return new Map(adds.map((a) => [a.set, 2]));
  }
  carried: TimedAddress[] = [];
  readLearned(): TimedAddress[] {
    return this.carried;
  }
  close(): void {}
}

function udp4(payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(28 + payload.length, 2);
  ip[9] = 17;
  ip.set([10, 53, 0, 53], 12);
  ip.set([10, 244, 1, 5], 16);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(53, 0);
  u.writeUInt16BE(40000, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, u, payload]);
}
const answer = (name: string, ttl: number, ...addrs: string[]): Buffer =>
  udp4(
    encodeResponse(
      [name],
      addrs.map((data) => ({ name, type: data.includes(':') ? ('AAAA' as const) : ('A' as const), ttl, data })),
    ),
  );

const plan: DnsPlan = {
  subjects: new Map([
    [4, new Set(['10.244.1.5'])],
    [6, new Set()],
  ]),
  sets: [
    { name: 's1_dns4', family: 4, patterns: ['*.allowed.test'] },
    { name: 's1_dns6', family: 6, patterns: ['*.allowed.test'] },
    { name: 's2_dns4', family: 4, patterns: ['a.allowed.test'] },
  ],
};

function setup(limits = { minTtlS: 5, maxTtlS: 3600, perName: 64, perNode: 16384 }) {
  const kernel = new FakeKernel();
  const registry = new Registry();
  const path = new DnsPath(kernel, registry, pino({ level: 'silent' }), { limits });
  const metric = async (name: string): Promise<number> => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(name));
    return Number(line?.split(' ').at(-1) ?? Number.NaN);
  };
  return { kernel, path, metric };
}

describe('DnsPath', () => {
  it('makes the queue tables only once a pod needs them, and again when they are gone', () => {
    const { kernel, path } = setup();
    path.afterSync({ subjects: new Map([[4, new Set()]]), sets: [] }, true);
    expect(kernel.installs).toBe(0);
    path.afterSync(plan, false);
    path.afterSync(plan, false);
    expect(kernel.installs).toBe(1);
    expect(kernel.subjects.get(4)).toEqual(new Set(['10.244.1.5']));
    // The tables gone behind the agent's back: made again at the next sync.
    kernel.failSubjects = true;
    path.afterSync(plan, false);
    kernel.failSubjects = false;
    path.afterSync(plan, false);
    expect(kernel.installs).toBe(2);
  });

  it('writes the addresses of listed names to every set they match, with the TTL; other names teach nothing', async () => {
    const { kernel, path, metric } = setup();
    path.afterSync(plan, false);
    kernel.writes = [];
    const now = Date.now();
    expect(path.onAnswer(answer('a.allowed.test', 30, '203.0.113.1', '2001:db8::1'), performance.timeOrigin + performance.now())).toBe(NF_ACCEPT);
    const w = kernel.writes.flat();
    expect(w.map((x) => [x.set, x.address]).sort()).toEqual([
      ['s1_dns4', '203.0.113.1'],
      ['s1_dns6', '2001:db8::1'],
      ['s2_dns4', '203.0.113.1'],
    ]);
    for (const x of w) expect(Math.abs(x.timeoutMs - 30_000)).toBeLessThan(1000 + (Date.now() - now));
    kernel.writes = [];
    expect(path.onAnswer(answer('www.other.test', 30, '198.51.100.1'), 0)).toBe(NF_ACCEPT);
    expect(path.onAnswer(Buffer.from('junk'), 0)).toBe(NF_ACCEPT);
    expect(kernel.writes.flat()).toEqual([]);
    expect(path.store.size).toBe(2);
    expect(await metric('weir_dns_answers_total{result="learned"}')).toBe(1);
    expect(await metric('weir_dns_answers_total{result="none"}')).toBe(1);
    expect(await metric('weir_dns_answers_total{result="unread"}')).toBe(1);
    expect(await metric('weir_dns_hold_seconds_count')).toBe(3);
  });

  it('never shortens a timeout: a shorter TTL writes nothing, a longer one extends', () => {
    const { kernel, path } = setup();
    path.afterSync(plan, false);
    path.onAnswer(answer('b.allowed.test', 60, '203.0.113.2'), 0);
    kernel.writes = [];
    path.onAnswer(answer('b.allowed.test', 10, '203.0.113.2'), 0);
    expect(kernel.writes.flat()).toEqual([]);
    path.onAnswer(answer('b.allowed.test', 600, '203.0.113.2'), 0);
    expect(kernel.writes.flat().map((x) => Math.round(x.timeoutMs / 1000))).toEqual([600]);
  });

  it('a full sync (sets made anew) writes every live address again; a failed write is retried on the next answer', async () => {
    const { kernel, path, metric } = setup();
    path.afterSync(plan, false);
    path.onAnswer(answer('c.allowed.test', 120, '203.0.113.3'), 0);
    kernel.writes = [];
    path.afterSync(plan, true);
    expect(kernel.writes.flat().map((x) => [x.set, x.address])).toEqual([['s1_dns4', '203.0.113.3']]);
    kernel.writes = [];
    kernel.failNext = true;
    path.onAnswer(answer('d.allowed.test', 120, '203.0.113.4'), 0);
    expect(await metric('weir_dns_write_errors_total')).toBe(1);
    path.onAnswer(answer('d.allowed.test', 120, '203.0.113.4'), 0);
    expect(kernel.writes.map((b) => b.map((x) => x.address))).toEqual([['203.0.113.4'], ['203.0.113.4']]);
  });

  it("an earlier agent's timed elements are written again after the first (full) sync, to the sets that still exist, with what is left", () => {
    const { kernel, path } = setup();
    const listing = {
      nftables: [
        { metainfo: { version: '1.0.6' } },
        {
          set: {
            family: 'inet',
            name: 's1_dns4',
            table: 'weir',
            type: 'ipv4_addr',
            flags: ['timeout'],
            elem: [{ elem: { val: '203.0.113.8', timeout: 100, expires: 99 } }, '203.0.113.9'],
          },
        },
        {
          set: {
            family: 'inet',
            name: 's9_dns4',
            table: 'weir',
            type: 'ipv4_addr',
            flags: ['timeout'],
            elem: [{ elem: { val: '203.0.113.10', timeout: 100, expires: 50 } }],
          },
        },
        { set: { family: 'inet', name: 'spods4', table: 'weir', type: 'ipv4_addr', elem: [{ elem: { val: '10.244.1.5', timeout: 1, expires: 1 } }] } },
      ],
    };
    const carried = learnedFromListing(listing);
    expect(carried).toEqual([
      { set: 's1_dns4', family: 4, address: '203.0.113.8', timeoutMs: 99_000 },
      { set: 's9_dns4', family: 4, address: '203.0.113.10', timeoutMs: 50_000 },
    ]);
    path.carryOver(carried, Date.now() - 9_000);
    path.afterSync(plan, true);
    const w = kernel.writes.flat();
    expect(w.map((x) => [x.set, x.address])).toEqual([['s1_dns4', '203.0.113.8']]);
    expect(Math.abs((w[0]?.timeoutMs ?? 0) - 90_000)).toBeLessThan(1000);
    // Only once.
    kernel.writes = [];
    path.afterSync(plan, true);
    expect(kernel.writes.flat()).toEqual([]);
    expect(learnedFromListing({ nftables: 'x' })).toEqual([]);
  });

  it('cap overflows are counted, and what fits is still written', async () => {
    const { kernel, path, metric } = setup({ minTtlS: 5, maxTtlS: 3600, perName: 2, perNode: 16384 });
    path.afterSync(plan, false);
    path.onAnswer(answer('e.allowed.test', 30, '203.0.113.5', '203.0.113.6', '203.0.113.7'), 0);
    expect(await metric('weir_dns_cap_overflows_total{cap="name"}')).toBe(1);
    expect(kernel.writes.flat().map((x) => x.address)).toEqual(['203.0.113.5', '203.0.113.6']);
    expect(await metric('weir_dns_learned_addresses')).toBe(2);
  });
});
