// The built weir plugin refusing bad input with the right CNI code and leaving
// nothing behind; STATUS and VERSION. Invoked as a runtime does
// (test/helpers/cni.ts), inside a throw-away node namespace.
//
// Needs root and iproute2; run `npm run build` first.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type CniNode,
  type CniOutcome,
  expectCniError,
  expectSuccess,
  hasLink,
  NOTHING_LEFT,
  type Pod,
  statusNetworkList,
  useCniNodes,
  walk,
} from '../helpers/cni.ts';

const nodes = useCniNodes('input');

interface BadInput {
  what: string;
  code: number;
  run: (node: CniNode, pod: Pod) => CniOutcome;
  /** What the message must say, so an operator can act on it. */
  msg: RegExp;
}

const withConf = (extra: Record<string, unknown>) => (node: CniNode, pod: Pod) => node.invoke('ADD', node.config(extra), pod);
const withoutKey = (key: string) => (node: CniNode, pod: Pod) => {
  const conf = node.config();
  delete conf[key];
  return node.invoke('ADD', conf, pod);
};

const badInputs: BadInput[] = [
  { what: 'malformed stdin', code: 6, run: (n, p) => n.invoke('ADD', '{"cniVersion":"1.1.0","name":', p), msg: /decod/ },
  { what: 'stdin that is a JSON array', code: 6, run: (n, p) => n.invoke('ADD', '[]', p), msg: /decod/ },
  { what: 'unsupported cniVersion 9.9.9', code: 1, run: withConf({ cniVersion: '9.9.9' }), msg: /9\.9\.9/ },
  { what: 'missing CNI_COMMAND', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { unset: ['CNI_COMMAND'] }), msg: /CNI_COMMAND/ },
  { what: 'missing CNI_CONTAINERID', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { unset: ['CNI_CONTAINERID'] }), msg: /CNI_CONTAINERID/ },
  { what: 'empty CNI_CONTAINERID', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { containerId: '' }), msg: /CNI_CONTAINERID/ },
  { what: 'missing CNI_NETNS', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { unset: ['CNI_NETNS'] }), msg: /CNI_NETNS/ },
  { what: 'missing CNI_IFNAME', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { unset: ['CNI_IFNAME'] }), msg: /CNI_IFNAME/ },
  { what: 'an interface name of 16 bytes', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { ifname: 'eth0123456789abc' }), msg: /CNI_IFNAME/ },
  // libcni's rule, which weir documents (src/cni/env.ts): an unknown key is an error unless IgnoreUnknown is true.
  {
    what: 'CNI_ARGS with an unknown key and no IgnoreUnknown',
    code: 4,
    run: (n, p) => n.invoke('ADD', n.config(), p, { args: 'K8S_POD_NAMESPACE=default;FOO=bar' }),
    msg: /CNI_ARGS.*FOO/,
  },
  { what: 'CNI_ARGS that is not K=V pairs', code: 4, run: (n, p) => n.invoke('ADD', n.config(), p, { args: 'IgnoreUnknown=1;K8S_POD_NAME' }), msg: /CNI_ARGS/ },
  {
    what: 'a pod name that is not a DNS subdomain (../x)',
    code: 4,
    run: (n, p) => n.invoke('ADD', n.config(), p, { args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=../x' }),
    msg: /K8S_POD_NAME/,
  },
  { what: 'a network name that is a path (../../etc)', code: 7, run: withConf({ name: '../../etc' }), msg: /^name/ },
  { what: 'a relative dataDir', code: 7, run: withConf({ dataDir: 'var/lib/weir' }), msg: /^dataDir/ },
  { what: 'missing podCIDRs', code: 7, run: withoutKey('podCIDRs'), msg: /^podCIDRs/ },
  { what: 'a malformed podCIDR', code: 7, run: withConf({ podCIDRs: ['10.244.1.0/33'] }), msg: /^podCIDRs\[0\]/ },
  { what: 'a podCIDR that is not a CIDR', code: 7, run: withConf({ podCIDRs: ['banana'] }), msg: /^podCIDRs\[0\]/ },
  { what: 'a podCIDR with host bits set', code: 7, run: withConf({ podCIDRs: ['10.244.1.7/24'] }), msg: /^podCIDRs\[0\].*host bits/ },
  { what: 'an IPv6 podCIDR with host bits set', code: 7, run: withConf({ podCIDRs: ['10.244.1.0/24', 'fd00::1/64'] }), msg: /^podCIDRs\[1\].*host bits/ },
  { what: 'mtu 0', code: 7, run: withConf({ mtu: 0 }), msg: /^mtu/ },
  { what: 'mtu 65536', code: 7, run: withConf({ mtu: 65536 }), msg: /^mtu/ },
  { what: 'mtu below the IPv6 minimum on a dual-stack network', code: 7, run: withConf({ mtu: 1279 }), msg: /^mtu/ },
  { what: 'mtu that is not a number', code: 7, run: withConf({ mtu: '1500' }), msg: /^mtu/ },
];

function expectNothingLeft(node: CniNode, pod: Pod): void {
  expect(node.leftovers()).toEqual(NOTHING_LEFT);
  expect(hasLink(pod.ns, pod.ifname), `${pod.ifname} in the pod`).toBe(false);
  expect(hasLink(node.ns, 'eth0'), 'eth0 in the node').toBe(false);
}

describe('weir plugin: bad input', () => {
  it.each(badInputs)('$what: code $code, nothing left behind', ({ run, code, msg }) => {
    const node = nodes.node();
    const pod = node.newPod();
    const e = expectCniError(run(node, pod), code);
    expect(e.msg).toMatch(msg);
    expectNothingLeft(node, pod);
  });

  it('a containerID of ../../etc/x: code 4, and no file is created anywhere', () => {
    const node = nodes.node();
    const pod = node.newPod();
    const etcX = fs.existsSync('/etc/x');
    const e = expectCniError(node.invoke('ADD', node.config(), pod, { containerId: '../../etc/x' }), 4);
    expect(e.msg).toMatch(/CNI_CONTAINERID/);
    // Also DEL and CHECK, which find state by container ID.
    expectCniError(node.invoke('DEL', node.config(), pod, { containerId: '../../etc/x' }), 4);
    expectCniError(node.invoke('CHECK', { ...node.config(), prevResult: { cniVersion: '1.1.0' } }, pod, { containerId: '../../etc/x' }), 4);
    const created = walk(node.tmp);
    expect(created.filter((f) => ['x', 'etc'].includes(path.basename(f)))).toEqual([]);
    expect(created.filter((f) => !f.startsWith('data'))).toEqual([]);
    expect(fs.existsSync('/etc/x')).toBe(etcX);
    expectNothingLeft(node, pod);
  });

  it('a pod that already has the interface: refused, its eth0 untouched, nothing left behind', () => {
    const node = nodes.node();
    const pod = node.newPod();
    pod.ns.sh(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const before = pod.ns.ipJson<{ address: string }[]>(['link', 'show', 'dev', 'eth0'])[0]?.address;
    const o = node.invoke('ADD', node.config(), pod);
    expect(o.code).not.toBe(0);
    expect(o.json?.msg, o.stdout).toMatch(/eth0.*exists/);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    expect(pod.ns.ipJson<{ address: string }[]>(['link', 'show', 'dev', 'eth0'])[0]?.address).toBe(before);
  });

  it('CNI_NETNS pointing to a regular file, empty or not: a clear error naming the path', () => {
    const node = nodes.node();
    const pod = node.newPod();
    for (const [name, content] of [
      ['not-a-netns', 'hello\n'],
      ['empty-file', ''],
    ] as const) {
      const file = path.join(node.tmp, name);
      fs.writeFileSync(file, content);
      const o = node.invoke('ADD', node.config(), pod, { netns: file });
      expect(o.code, `exit status for ${name}`).not.toBe(0);
      expect(o.json?.msg, `error for ${name}: ${o.stdout}`).toEqual(expect.stringContaining(file));
      expect(o.json!.msg).toMatch(/namespace/);
      expect(o.json!.code).toBeGreaterThan(0);
      expectNothingLeft(node, pod);
    }
  });

  it('CNI_NETNS pointing to a namespace of another type: a clear error naming the path', () => {
    const node = nodes.node();
    const pod = node.newPod();
    const pidNs = '/proc/self/ns/pid';
    const o = node.invoke('ADD', node.config(), pod, { netns: pidNs });
    expect(o.code).not.toBe(0);
    expect(o.json?.msg, o.stdout).toEqual(expect.stringContaining(pidNs));
    expect(o.json!.msg).toMatch(/namespace/);
    expectNothingLeft(node, pod);
  });

  it('CNI_NETNS pointing to a missing path: a clear error naming the path', () => {
    const node = nodes.node();
    const pod = node.newPod();
    const missing = path.join(node.tmp, 'no-such-netns');
    const o = node.invoke('ADD', node.config(), pod, { netns: missing });
    expect(o.code).not.toBe(0);
    expect(o.json?.msg, o.stdout).toEqual(expect.stringContaining(missing));
    expect(o.json!.msg).toMatch(/ENOENT|no such/i);
    expectNothingLeft(node, pod);
  });

  it("CNI_NETNS equal to the node's own namespace is refused: the node gets no eth0", () => {
    const node = nodes.node();
    const pod = node.newPod();
    const e = expectCniError(node.invoke('ADD', node.config(), pod, { netns: node.ns.path }), 4);
    expect(e.msg).toMatch(/own network namespace/);
    expect(node.linkNames()).toEqual(['lo']);
    expectNothingLeft(node, pod);
  });

  it('range exhaustion on a /30: the third ADD fails with code 100 naming the range and leaves no veth', () => {
    const node = nodes.node();
    const conf = node.config({ podCIDRs: ['10.244.9.0/30'] });
    const [p1, p2, p3] = [node.newPod(), node.newPod(), node.newPod()] as [Pod, Pod, Pod];
    const a1 = node.add(p1, conf);
    const a2 = node.add(p2, conf);
    expect([a1.ipv4, a2.ipv4].sort()).toEqual(['10.244.9.1', '10.244.9.2']);

    const e = expectCniError(node.invoke('ADD', conf, p3), 100, 'third ADD');
    expect(e.msg).toContain('10.244.9.0/30');
    expect(node.linkNames().sort()).toEqual(['lo', a1.hostVeth, a2.hostVeth].sort());
    expect(hasLink(p3.ns, 'eth0')).toBe(false);
    expect(node.addressFiles().sort()).toEqual(['10.244.9.1', '10.244.9.2']);
    expect(node.tempFiles()).toEqual([]);

    // Freeing one address makes room again.
    node.del(a1, conf);
    const a3 = node.add(p3, conf);
    expect(a3.ipv4).toBe('10.244.9.1');
    node.del(a2, conf);
    node.del(a3, conf);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });
});

describe('weir plugin: STATUS and VERSION', () => {
  it('STATUS: ready (exit 0, no output) while addresses are free', () => {
    const node = nodes.node();
    const st = statusNetworkList(node.name, node.list());
    expect(st.ok, st.error).toBe(true);
    expect(st.steps[0]?.outcome.stdout).toBe('');
    // Still ready with a pod attached.
    const pod = node.add(node.newPod());
    expect(statusNetworkList(node.name, node.list()).ok).toBe(true);
    node.del(pod);
  });

  it('STATUS: code 50 naming the range once a /30 is full, ready again after a DEL', () => {
    const node = nodes.node();
    const extra = { podCIDRs: ['10.244.9.0/30'] };
    const conf = node.config(extra);
    const pods = [node.add(node.newPod(), conf), node.add(node.newPod(), conf)];
    const st = statusNetworkList(node.name, node.list(extra));
    expect(st.ok).toBe(false);
    const e = expectCniError(st.steps[0]!.outcome, 50, 'STATUS');
    expect(e.msg).toContain('10.244.9.0/30');
    node.del(pods[0]!, conf);
    expect(statusNetworkList(node.name, node.list(extra)).ok).toBe(true);
    node.del(pods[1]!, conf);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });

  it('STATUS: code 50 when the dataDir cannot be created', () => {
    const node = nodes.node();
    const file = path.join(node.tmp, 'a-file');
    fs.writeFileSync(file, 'not a directory\n');
    const extra = { dataDir: path.join(file, 'weir') };
    const st = statusNetworkList(node.name, node.list(extra));
    expect(st.ok).toBe(false);
    const e = expectCniError(st.steps[0]!.outcome, 50, 'STATUS');
    expect(e.msg).toContain(file);
    expect(walk(node.tmp)).toEqual(['a-file']);
  });

  it('STATUS is refused below cniVersion 1.1.0 (code 1)', () => {
    const node = nodes.node();
    expectCniError(node.invoke('STATUS', node.config({}, '1.0.0')), 1, 'STATUS with 1.0.0');
  });

  it('VERSION prints the supported versions, echoing the requested one', () => {
    const node = nodes.node();
    for (const [stdin, echoed] of [
      ['{"cniVersion":"1.0.0"}', '1.0.0'],
      ['{"cniVersion":"1.1.0"}', '1.1.0'],
      ['', '1.1.0'],
    ] as const) {
      const out = expectSuccess(node.invoke('VERSION', stdin), `VERSION with stdin ${JSON.stringify(stdin)}`);
      expect(out.cniVersion).toBe(echoed);
      expect(out.supportedVersions).toEqual(expect.arrayContaining(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']));
    }
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });
});
