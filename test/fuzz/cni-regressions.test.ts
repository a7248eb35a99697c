// Inputs the CNI fuzzers found that the plugin mishandled, each checked
// through the same in-process invocation the fuzzers use (invoke() over the
// real parsing and IPAM, fake netlink) and, where it is about parsing, on the
// parser itself.
import { describe, expect, it } from 'vitest';
import { fakePlugin } from '../../fuzz/lib/cni-fakes.ts';
import { parseCniArgs } from '../../src/cni/env.ts';
import { invoke } from '../../src/plugin/invoke.ts';

const CONF = JSON.stringify({ cniVersion: '1.1.0', name: 'weir', type: 'weir', podCIDRs: ['10.244.1.0/24'] });
const env = (args: string) => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: args });

describe('CNI_ARGS keys that are names of Object.prototype members', () => {
  const keys = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

  it.each(keys)('%s=x is an unknown key: code 4 naming it without IgnoreUnknown', async (key) => {
    const o = await invoke(env(`K8S_POD_NAME=p;${key}=x`), CONF, fakePlugin().verbs);
    expect(o.code).toBe(1);
    const e = JSON.parse(o.stdout) as { code: number; msg: string };
    expect(e.code).toBe(4);
    expect(e.msg).toContain(`unknown args "${key}"`);
  });

  it.each(keys)('%s=x is ignored with IgnoreUnknown=1: ADD succeeds with the pod name kept', async (key) => {
    expect(parseCniArgs(`IgnoreUnknown=1;K8S_POD_NAME=p;${key}=x`).k8s).toEqual({ name: 'p' });
    const o = await invoke(env(`IgnoreUnknown=1;${key}=x`), CONF, fakePlugin().verbs);
    expect(o.stdout).toMatch(/"ips":\[\{"interface":1,"address":"10\.244\.1\.\d+\/32"/);
    expect(o.code).toBe(0);
  });
});

describe('pod CIDRs overlapping ranges that hold no pod addresses', () => {
  // The replay of the corpus on the real plugin found ::/126 accepted: ADD
  // took ::1 and the kernel refused it (code 101) after the address was taken.
  const refused: [string, RegExp][] = [
    ['::/126', /::\/127 \(unspecified and loopback\)/],
    ['0.0.0.0/24', /0\.0\.0\.0\/8/],
    ['127.0.0.0/24', /loopback/],
    ['169.254.1.0/24', /link-local/],
    ['224.0.0.0/24', /multicast/],
    ['255.255.255.0/24', /broadcast/],
    ['::ffff:10.0.0.0/120', /IPv4-mapped/],
    ['fe80::/64', /link-local/],
    ['ff00::/64', /multicast/],
    ['0.0.0.0/0', /0\.0\.0\.0\/8/],
  ];

  it.each(refused)('%s: ADD refused with code 7 naming the range, nothing taken', async (cidr, why) => {
    const { verbs, store } = fakePlugin();
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'weir', type: 'weir', podCIDRs: [cidr] });
    const o = await invoke(env(''), conf, verbs);
    const e = JSON.parse(o.stdout) as { code: number; msg: string };
    expect(e.code).toBe(7);
    expect(e.msg).toMatch(/^podCIDRs\[0\]/);
    expect(e.msg).toMatch(why);
    expect(store.withLock(() => store.list())).toEqual([]);
  });

  it.each(['10.244.0.0/16', '100.64.0.0/10', '192.168.0.0/24', '1.0.0.0/24', '223.255.255.0/24', 'fd00:10:244:1::/64', '2001:db8::/64', '64:ff9b:1::/64'])(
    '%s is still a pod range',
    async (cidr) => {
      const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'weir', type: 'weir', podCIDRs: [cidr] });
      const o = await invoke(env(''), conf, fakePlugin().verbs);
      expect(o.stdout).toContain('"ips"');
      expect(o.code).toBe(0);
    },
  );
});
