import { describe, expect, it } from 'vitest';
import { CniCode, InternalError, InvalidConfigError, RangeExhaustedError } from '../../../src/errors.ts';
import { type Attachment, allocate, assignedAddresses, gc, release, usage } from '../../../src/ipam/allocator.ts';
import { MemoryStore } from '../../../src/ipam/memory-store.ts';
import { PodRange } from '../../../src/ipam/range.ts';
import type { AllocationRecord } from '../../../src/ipam/store.ts';

const v4 = (cidr = '10.244.1.0/24') => PodRange.parse(cidr);
const v6 = (cidr = 'fd00:10:244:1::/64') => PodRange.parse(cidr);
const pod = (id: string, ifname = 'eth0'): Attachment => ({ containerID: id, ifname, network: 'weir' });

describe('allocate', () => {
  it('hands out the first address, records pod metadata, and sets the hint', () => {
    const store = new MemoryStore();
    const at = new Date('2024-05-01T12:00:00Z');
    const rec = allocate(store, [v4()], { ...pod('c1'), podNamespace: 'ns', podName: 'p', podUid: 'u' }, () => at);
    expect(rec).toEqual({
      containerID: 'c1',
      ifname: 'eth0',
      network: 'weir',
      podNamespace: 'ns',
      podName: 'p',
      podUid: 'u',
      addresses: ['10.244.1.1'],
      created: '2024-05-01T12:00:00.000Z',
    });
    expect(store.withLock(() => store.lastReserved(4))).toBe('10.244.1.1');
    expect(store.locked).toBe(false);
  });

  it('is idempotent per containerID+ifname, and distinct per ifname', () => {
    const store = new MemoryStore();
    const a = allocate(store, [v4()], pod('c1'));
    const b = allocate(store, [v4()], pod('c1'));
    expect(b).toEqual(a);
    const c = allocate(store, [v4()], pod('c1', 'net1'));
    expect(c.addresses).toEqual(['10.244.1.2']);
    expect(store.withLock(() => store.list())).toHaveLength(2);
  });

  it('goes round-robin: a freed address is not reused at once', () => {
    const store = new MemoryStore();
    const r = v4();
    expect(allocate(store, [r], pod('a')).addresses).toEqual(['10.244.1.1']);
    expect(allocate(store, [r], pod('b')).addresses).toEqual(['10.244.1.2']);
    expect(release(store, 'a', 'eth0')?.addresses).toEqual(['10.244.1.1']);
    expect(allocate(store, [r], pod('c')).addresses).toEqual(['10.244.1.3']);
  });

  it('wraps around and reuses freed addresses once the end is reached', () => {
    const store = new MemoryStore();
    const r = v4('10.0.0.0/29'); // .1 .. .6
    for (let i = 1; i <= 6; i++) expect(allocate(store, [r], pod(`p${i}`)).addresses).toEqual([`10.0.0.${i}`]);
    release(store, 'p2', 'eth0');
    release(store, 'p4', 'eth0');
    expect(allocate(store, [r], pod('x')).addresses).toEqual(['10.0.0.2']);
    expect(allocate(store, [r], pod('y')).addresses).toEqual(['10.0.0.4']);
  });

  it('starts after a hint and ignores a hint outside the range', () => {
    const store = new MemoryStore();
    store.withLock(() => store.setLastReserved(4, '10.244.1.100'));
    expect(allocate(store, [v4()], pod('a')).addresses).toEqual(['10.244.1.101']);
    store.withLock(() => store.setLastReserved(4, '192.168.0.1'));
    expect(allocate(store, [v4()], pod('b')).addresses).toEqual(['10.244.1.1']);
  });

  it('throws RangeExhaustedError (CNI 100) naming the range when full', () => {
    const store = new MemoryStore();
    const r = v4('10.9.9.0/30');
    allocate(store, [r], pod('a'));
    allocate(store, [r], pod('b'));
    let err: unknown;
    try {
      allocate(store, [r], pod('c'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RangeExhaustedError);
    expect((err as RangeExhaustedError).cniCode).toBe(CniCode.RangeExhausted);
    expect((err as RangeExhaustedError).cniCode).toBe(100);
    expect((err as Error).message).toContain('10.9.9.0/30');
    expect(store.locked).toBe(false);
    // Freeing one makes room again.
    release(store, 'a', 'eth0');
    expect(allocate(store, [r], pod('c')).addresses).toEqual(['10.9.9.1']);
  });

  it('gives one address per family for dual-stack, and exhaustion of either fails the whole', () => {
    const store = new MemoryStore();
    const ranges = [v4('10.1.0.0/29'), v6('fd00::/126')];
    const a = allocate(store, ranges, pod('a'));
    expect(a.addresses).toEqual(['10.1.0.1', 'fd00::1']);
    expect(assignedAddresses(a, ranges).map((x) => x.prefixed)).toEqual(['10.1.0.1/29', 'fd00::1/126']);
    allocate(store, ranges, pod('b'));
    allocate(store, ranges, pod('c'));
    expect(() => allocate(store, ranges, pod('d'))).toThrow(/fd00::\/126/);
    // Nothing half-reserved by the failed attempt.
    expect(
      store
        .withLock(() => store.list())
        .map((r) => r.containerID)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
    expect(usage(store, ranges)).toEqual([
      { range: '10.1.0.0/29', size: 6n, used: 3, free: 3n },
      { range: 'fd00::/126', size: 3n, used: 3, free: 0n },
    ]);
  });

  it('never gives one address to two attachments', () => {
    const store = new MemoryStore();
    const r = v4('10.2.0.0/26');
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      if (i % 3 === 0 && i > 0) release(store, `p${i - 2}`, 'eth0');
      try {
        allocate(store, [r], pod(`p${i}`));
      } catch (e) {
        expect(e).toBeInstanceOf(RangeExhaustedError);
      }
      const live = store.withLock(() => store.list()).flatMap((x) => x.addresses);
      expect(new Set(live).size).toBe(live.length);
      for (const a of live) seen.add(a);
    }
    expect(seen.size).toBe(62);
  });

  it('skips an address the store refuses even though list() did not show it', () => {
    class Hiding extends MemoryStore {
      override list(): AllocationRecord[] {
        return super.list().filter((r) => r.containerID !== 'hidden');
      }
    }
    const store = new Hiding();
    allocate(store, [v4()], pod('hidden'));
    store.withLock(() => store.setLastReserved(4, '10.244.1.254')); // so the walk meets .1 first
    expect(allocate(store, [v4()], pod('b')).addresses).toEqual(['10.244.1.2']);
  });

  it('gives up with InternalError when a store refuses everything', () => {
    class Refusing extends MemoryStore {
      override reserve(): boolean {
        return false;
      }
    }
    expect(() => allocate(new Refusing(), [v6()], pod('a'))).toThrow(InternalError);
  });

  it('rejects no ranges and two ranges of one family', () => {
    expect(() => allocate(new MemoryStore(), [], pod('a'))).toThrow(InvalidConfigError);
    expect(() => allocate(new MemoryStore(), [v4(), v4('10.3.0.0/24')], pod('a'))).toThrow(InvalidConfigError);
  });
});

describe('release and gc', () => {
  it('release is idempotent', () => {
    const store = new MemoryStore();
    allocate(store, [v4(), v6()], pod('a'));
    expect(release(store, 'a', 'eth0')?.addresses).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    expect(release(store, 'a', 'eth0')).toBeUndefined();
    expect(release(store, 'never', 'eth0')).toBeUndefined();
    expect(store.withLock(() => store.list())).toEqual([]);
  });

  it('gc frees exactly the attachments that are not valid', () => {
    const store = new MemoryStore();
    const ranges = [v4(), v6()];
    for (const id of ['a', 'b', 'c']) allocate(store, ranges, pod(id));
    allocate(store, ranges, pod('a', 'net1'));
    const released = gc(store, [
      { containerID: 'a', ifname: 'eth0' },
      { containerID: 'c', ifname: 'eth0' },
    ]);
    expect(released.map((r) => `${r.containerID}/${r.ifname}`).sort()).toEqual(['a/net1', 'b/eth0']);
    expect(
      store
        .withLock(() => store.list())
        .map((r) => r.containerID)
        .sort(),
    ).toEqual(['a', 'c']);
    expect(usage(store, ranges).map((u) => u.used)).toEqual([2, 2]);
    expect(gc(store, [])).toHaveLength(2);
    expect(usage(store, ranges).map((u) => u.used)).toEqual([0, 0]);
  });
});

describe('MemoryStore contract', () => {
  it('refuses use without the lock', () => {
    const store = new MemoryStore();
    expect(() => store.list()).toThrow(InternalError);
    expect(() => store.reserve({ containerID: 'a', ifname: 'eth0', addresses: ['10.0.0.1'], created: '' })).toThrow(InternalError);
  });

  it('reserve is all or none', () => {
    const store = new MemoryStore();
    store.withLock(() => {
      expect(store.reserve({ containerID: 'a', ifname: 'eth0', addresses: ['10.0.0.1'], created: '' })).toBe(true);
      expect(store.reserve({ containerID: 'b', ifname: 'eth0', addresses: ['10.0.0.2', '10.0.0.1'], created: '' })).toBe(false);
      expect(store.findByAttachment('b', 'eth0')).toBeUndefined();
      expect(store.list()).toHaveLength(1);
    });
  });
});
