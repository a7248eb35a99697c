// Inputs the CNI fuzzers found that the plugin mishandled, each checked
// through the same in-process invocation the fuzzers use (invoke() over the
// real parsing and IPAM, fake netlink) and, where it is about parsing, on the
// parser itself.
import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/env.ts';
import { invoke } from '../../src/plugin/invoke.ts';
import { fakePlugin } from '../../fuzz/lib/cni-fakes.ts';

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
    expect(o.stdout).toMatch(/"ips":\[\{"interface":0,"address":"10\.244\.1\.\d+\/32"/);
    expect(o.code).toBe(0);
  });
});
