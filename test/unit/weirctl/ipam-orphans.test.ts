// weirctl ipam flags every record without a pod: not in the API, another pod
// (uid) under its name, or no pod recorded; with the host veth still up (the
// runtime's DEL is due) or gone (a leak gc frees).
import { describe, expect, it } from 'vitest';
import type { AllocationRecord } from '../../../src/ipam/store.ts';
import { hostVethName } from '../../../src/plugin/names.ts';
import { allocations, findLeaks, formatIpam, type IpamReport } from '../../../src/weirctl/commands/ipam.ts';

const rec = (id: string, ip: string, pod?: [string, string, string?]): AllocationRecord => ({
  containerID: id,
  ifname: 'eth0',
  addresses: [ip],
  created: '2026-01-01T00:00:00.000Z',
  ...(pod ? { podNamespace: pod[0], podName: pod[1], ...(pod[2] ? { podUid: pod[2] } : {}) } : {}),
});

describe('weirctl ipam: records without a pod', () => {
  it('are flagged with why, uid-aware', () => {
    const records = [
      rec('c1', '10.1.0.2', ['x', 'a', 'u1']),
      rec('c2', '10.1.0.3', ['x', 'b', 'old']),
      rec('c3', '10.1.0.4', ['x', 'gone']),
      rec('c4', '10.1.0.5'),
    ];
    const pods = new Map<string, string | undefined>([
      ['x/a', 'u1'],
      ['x/b', 'new'],
    ]);
    const a = allocations(records, pods, new Set([hostVethName('c3', 'eth0')]), Date.parse('2026-01-01T01:00:00Z'));
    expect(a.map((x) => x.podStatus)).toEqual(['present', 'replaced', 'absent', 'unnamed']);
    const report: IpamReport = {
      network: 'weir',
      dataDir: '/d',
      conflist: undefined,
      ranges: [],
      allocations: a,
      warnings: [],
      leaks: findLeaks(a, [], 'weir'),
    };
    expect(report.leaks.records.map((x) => x.containerID)).toEqual(['c2', 'c4']);
    const text = formatIpam(report, false);
    expect(text).toContain('Records without a pod: 3');
    expect(text).toContain('10.1.0.3 (container c2): x/b in the API is another pod (uid)');
    expect(text).toMatch(/10\.1\.0\.4 \(container c3\): x\/gone is not in the API; weir\w+ still exists: the runtime's DEL is due/);
    expect(text).toContain('10.1.0.5 (container c4): the runtime did not name its pod');
  });
});
