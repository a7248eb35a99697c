// IPAM = pods: which records the agent's sweep frees (container gone: no
// host veth, and no pod in the API, another pod under that name, or the same
// pod wired again), which it leaves (young, veth up, pod still there), and
// that the release goes through the CNI GC verb's collectGarbage under the
// store's lock.
import { describe, expect, it } from 'vitest';
import { recordPod, recordsToFree, sweepIpam } from '../../../src/agent/ipam-sweep.ts';
import { MemoryStore } from '../../../src/ipam/memory-store.ts';
import type { AllocationRecord } from '../../../src/ipam/store.ts';
import type { NetlinkHandle } from '../../../src/netlink/rtnl-handle.ts';
import { hostVethName } from '../../../src/plugin/names.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const OLD = '2026-01-01T11:00:00.000Z';
const rec = (id: string, ip: string, pod?: { ns: string; name: string; uid?: string }, created = OLD): AllocationRecord => ({
  containerID: id,
  ifname: 'eth0',
  network: 'weir',
  ...(pod ? { podNamespace: pod.ns, podName: pod.name, ...(pod.uid ? { podUid: pod.uid } : {}) } : {}),
  addresses: [ip],
  created,
});
const veth = (r: AllocationRecord): string => hostVethName(r.containerID, r.ifname);

describe('recordsToFree', () => {
  const live = rec('c1', '10.1.0.2', { ns: 'x', name: 'a', uid: 'u1' });
  const deleted = rec('c2', '10.1.0.3', { ns: 'x', name: 'gone', uid: 'u2' });
  const stillWired = rec('c3', '10.1.0.4', { ns: 'x', name: 'gone2' });
  const young = rec('c4', '10.1.0.5', { ns: 'x', name: 'gone3' }, new Date(NOW - 5000).toISOString());
  const renamed = rec('c5', '10.1.0.6', { ns: 'x', name: 'b', uid: 'old-uid' });
  const oldSandbox = rec('c6', '10.1.0.7', { ns: 'x', name: 'a', uid: 'u1' });
  const unnamed = rec('c7', '10.1.0.8');
  const records = [live, deleted, stillWired, young, renamed, oldSandbox, unnamed];
  const pods = new Map<string, string | undefined>([
    ['x/a', 'u1'],
    ['x/b', 'new-uid'],
  ]);
  const links = new Set([veth(live), veth(stillWired)]);

  it('frees records whose container is gone, and only those', () => {
    const free = recordsToFree({ records, pods, links, now: NOW, graceMs: 60_000 });
    expect(free.map((d) => d.record.containerID).sort()).toEqual(['c2', 'c5', 'c6', 'c7']);
    expect(free.find((d) => d.record.containerID === 'c5')?.reason).toMatch(/another pod \(uid\)/);
    expect(free.find((d) => d.record.containerID === 'c6')?.reason).toMatch(/another sandbox/);
  });

  it('classifies a record against the API', () => {
    expect(recordPod(live, pods)).toBe('present');
    expect(recordPod(deleted, pods)).toBe('absent');
    expect(recordPod(renamed, pods)).toBe('replaced');
    expect(recordPod(unnamed, pods)).toBe('unnamed');
  });

  it('releases them in the store through collectGarbage, removing no veth it did not release', () => {
    const store = new MemoryStore();
    for (const r of records) store.withLock(() => store.reserve(r));
    const deletedLinks: number[] = [];
    const host = {
      linkList: () => [...links].map((name, i) => ({ name, index: i + 10, alias: `weir/weir/x/y/${name}` })),
      linkDelete: (i: number) => deletedLinks.push(i),
    } as unknown as NetlinkHandle;
    const r = sweepIpam(store, 'weir', pods, host, { graceMs: 60_000, now: NOW });
    expect(r.released.map((d) => d.record.containerID).sort()).toEqual(['c2', 'c5', 'c6', 'c7']);
    expect(
      store
        .withLock(() => store.list())
        .map((x) => x.containerID)
        .sort(),
    ).toEqual(['c1', 'c3', 'c4']);
    expect(deletedLinks).toEqual([]);
    expect(sweepIpam(store, 'weir', pods, host, { graceMs: 60_000, now: NOW }).released).toEqual([]);
  });
});
