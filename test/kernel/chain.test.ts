// weir as the first plugin of a conflist, chained with the reference plugins
// (Debian containernetworking-plugins 1.1.1 in /usr/lib/cni: portmap,
// bandwidth, tuning), run the way libcni runs a list (test/helpers/cni.ts):
// name/cniVersion/prevResult/runtimeConfig injected per plugin, DEL in
// reverse, CHECK in order with the final result. The reference plugins speak
// configs up to 1.0.0, so the lists use cniVersion 1.0.0.
//
// Everything runs in a throw-away node namespace (its own iptables/nftables
// state, qdiscs and sysctls); nothing touches the root namespace.
// Needs root, busybox, iproute2 (tc), iptables; run `npm run build` first.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AttachedPod,
  addNetworkList,
  type CniNode,
  type ConfList,
  checkNetworkList,
  delNetworkList,
  expectCniError,
  expectSuccess,
  hasLink,
  NODE_IPV4,
  NODE_IPV6,
  NOTHING_LEFT,
  type PluginConf,
  ping,
  readdir,
  tcpExchange,
  useCniNodes,
} from '../helpers/cni.ts';

const nodes = useCniNodes('chain');

const VERSION = '1.0.0';
const HOST_PORT = 18080;
const POD_PORT = 8080;
const TUNED_MAC = 'c2:b0:57:49:47:f1';
const PORT_MAPPINGS = [{ hostPort: HOST_PORT, containerPort: POD_PORT, protocol: 'tcp' }];
// bandwidth takes bits per second and bits.
const BANDWIDTH = { ingressRate: 10_000_000, ingressBurst: 1_000_000, egressRate: 10_000_000, egressBurst: 1_000_000 };

const weirPlugin = (node: CniNode): PluginConf => {
  const { cniVersion: _v, name: _n, ...plugin } = node.config();
  return plugin as PluginConf;
};
const portmap: PluginConf = { type: 'portmap', capabilities: { portMappings: true }, snat: true };
const bandwidth: PluginConf = { type: 'bandwidth', capabilities: { bandwidth: true } };
const tuning = (node: CniNode, mac?: string): PluginConf => ({
  type: 'tuning',
  ...(mac ? { mac } : {}),
  sysctl: { 'net.ipv4.conf.eth0.rp_filter': '2' },
  dataDir: path.join(node.tmp, 'tuning'),
});

const list = (node: CniNode, ...plugins: PluginConf[]): ConfList => ({ cniVersion: VERSION, name: node.network, plugins: [weirPlugin(node), ...plugins] });

/** The same result, however a plugin's Go types re-marshalled it (an empty `dns` may appear). */
function normalized(result: Record<string, unknown>): Record<string, unknown> {
  const { dns, ...rest } = result;
  return dns && Object.keys(dns).length > 0 ? { ...rest, dns } : rest;
}

const natRules = (node: CniNode, cmd: 'iptables' | 'ip6tables'): string => node.ns.sh([cmd, '-t', 'nat', '-S']);
const qdiscs = (node: CniNode, dev: string): { kind: string; handle: string }[] => JSON.parse(node.ns.sh(['tc', '-j', 'qdisc', 'show', 'dev', dev]) || '[]');

function addChain(node: CniNode, conf: ConfList, capabilityArgs: Record<string, unknown> = {}) {
  const pod = node.newPod();
  const rt = { ...pod.rt, capabilityArgs };
  const add = addNetworkList(node.name, conf, rt);
  expect(add.ok, add.error).toBe(true);
  // libcni's injection: every plugin gets the list's name and version; the
  // first no prevResult, each later one the previous plugin's result; a
  // runtimeConfig only with the capabilities the plugin declares.
  add.steps.forEach((s, i) => {
    expect(s.stdin).toMatchObject({ name: conf.name, cniVersion: VERSION, type: conf.plugins[i]!.type });
    if (i === 0) expect(s.stdin).not.toHaveProperty('prevResult');
    else expect(s.stdin['prevResult']).toEqual(add.steps[i - 1]!.outcome.json);
  });
  expect(add.steps[0]!.stdin).not.toHaveProperty('runtimeConfig');
  const weir: AttachedPod = node.attached(pod, expectSuccess(add.steps[0]!.outcome, 'weir ADD'));
  return { pod, rt, add, weir, final: add.result };
}

function delChain(node: CniNode, conf: ConfList, rt: Parameters<typeof delNetworkList>[2], final: unknown): void {
  const del = delNetworkList(node.name, conf, rt, final);
  expect(del.ok, del.error).toBe(true);
  expect(del.steps.map((s) => s.type)).toEqual(conf.plugins.map((p) => p.type).reverse());
  for (const s of del.steps) expect(s.stdin['prevResult']).toEqual(final);
}

describe('chaining: weir → reference plugins (cniVersion 1.0.0)', () => {
  it('weir → portmap: the result passes through, hostPort 18080 reaches the pod on 8080', async () => {
    const node = nodes.node();
    const conf = list(node, portmap);
    const { rt, add, weir, final } = addChain(node, conf, { portMappings: PORT_MAPPINGS });
    expect(add.steps[1]!.stdin['runtimeConfig']).toEqual({ portMappings: PORT_MAPPINGS });
    expect(normalized(final!)).toEqual(normalized(weir.result));

    expect(natRules(node, 'iptables')).toContain(`--to-destination ${weir.ipv4}:${POD_PORT}`);
    expect(natRules(node, 'iptables')).toContain(`--dport ${HOST_PORT}`);
    expect(natRules(node, 'ip6tables')).toContain(`--to-destination [${weir.ipv6}]:${POD_PORT}`);
    // A client on the node connects to the node's own address and port 18080.
    expect(await tcpExchange(weir.ns, node.ns, NODE_IPV4, POD_PORT, 'via portmap v4\n', HOST_PORT)).toBe('via portmap v4\n');
    expect(await tcpExchange(weir.ns, node.ns, NODE_IPV6, POD_PORT, 'via portmap v6\n', HOST_PORT)).toBe('via portmap v6\n');

    // portmap 1.1.1's own CHECK always fails (it looks for ip6tables rules of
    // the IPv4 address: containernetworking/plugins#819, fixed upstream
    // later), so only weir's part of the chain is checked, with the final result.
    const check = checkNetworkList(node.name, { ...conf, plugins: [conf.plugins[0]!] }, rt, final);
    expect(check.ok, check.error).toBe(true);

    delChain(node, conf, rt, final);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    for (const cmd of ['iptables', 'ip6tables'] as const) {
      const rules = natRules(node, cmd);
      expect(rules).not.toContain(`${HOST_PORT}`);
      expect(rules).not.toContain(cmd === 'iptables' ? weir.ipv4 : weir.ipv6);
    }
  });

  it('weir → bandwidth: tbf and ingress qdiscs on the host veth named in weir’s result; DEL removes the ifb', () => {
    const node = nodes.node();
    const conf = list(node, bandwidth);
    const { rt, add, weir, final } = addChain(node, conf, { bandwidth: BANDWIDTH });
    expect(add.steps[1]!.stdin['runtimeConfig']).toEqual({ bandwidth: BANDWIDTH });

    const hostVeth = weir.result.interfaces![0]!.name;
    expect(hostVeth).toBe(weir.hostVeth);
    const kinds = qdiscs(node, hostVeth).map((q) => q.kind);
    expect(kinds, `qdiscs on ${hostVeth}`).toContain('tbf'); // traffic to the pod
    expect(kinds, `qdiscs on ${hostVeth}`).toContain('ingress'); // traffic from the pod, redirected to an ifb
    const ifbs = node.links().filter((l) => l.linkinfo?.info_kind === 'ifb');
    expect(ifbs).toHaveLength(1);
    expect(qdiscs(node, ifbs[0]!.ifname).map((q) => q.kind)).toContain('tbf');
    // bandwidth passes weir's result on and appends its ifb.
    expect(normalized({ ...final, interfaces: final!.interfaces!.slice(0, 2) })).toEqual(normalized(weir.result));
    expect(final!.interfaces!.slice(2)).toEqual([{ name: ifbs[0]!.ifname, mac: ifbs[0]!.address }]);
    expect(ping(node.ns, weir.ipv4!)).toBe(true);

    const check = checkNetworkList(node.name, conf, rt, final);
    expect(check.ok, check.error).toBe(true);

    delChain(node, conf, rt, final);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });

  it('weir → bandwidth → tuning (mac, sysctl): CHECK of the whole chain passes with tuning’s result', () => {
    const node = nodes.node();
    const conf = list(node, bandwidth, tuning(node, TUNED_MAC));
    const { rt, add, weir, final } = addChain(node, conf, { bandwidth: BANDWIDTH });
    // tuning gets no runtimeConfig: it declares no capability.
    expect(add.steps[2]!.stdin).not.toHaveProperty('runtimeConfig');

    // tuning changed the pod's MAC and reported it; the rest is weir's (and bandwidth's ifb).
    expect(final!.interfaces![1]).toEqual({ name: 'eth0', mac: TUNED_MAC, sandbox: weir.ns.path });
    expect(final!.interfaces![0]).toEqual(weir.result.interfaces![0]);
    expect(final!.ips).toEqual(weir.result.ips);
    expect(final!.routes).toEqual(weir.result.routes);
    expect(weir.ns.ipJson<{ address: string }[]>(['link', 'show', 'dev', 'eth0'])[0]?.address).toBe(TUNED_MAC);
    expect(weir.ns.sh(['cat', '/proc/sys/net/ipv4/conf/eth0/rp_filter']).trim()).toBe('2');

    const check = checkNetworkList(node.name, conf, rt, final);
    expect(check.ok, check.error).toBe(true);
    expect(check.steps.map((s) => s.type)).toEqual(['weir', 'bandwidth', 'tuning']);
    // Judged against weir's own (pre-tuning) result instead, weir's CHECK sees the MAC tuning set and fails.
    const stale = checkNetworkList(node.name, { ...conf, plugins: [conf.plugins[0]!] }, rt, weir.result);
    expect(stale.ok).toBe(false);
    expect(expectCniError(stale.steps[0]!.outcome, 103, 'CHECK against a stale result').msg).toContain(TUNED_MAC);

    // The pod must still work with its new MAC. The kernel flushes every
    // neighbour entry of a device, permanent ones included, when its MAC
    // changes (NETDEV_CHANGEADDR → neigh_changeaddr), so the pod must be able
    // to resolve its gateway again: the host veth owns it.
    expect(ping(node.ns, weir.ipv4!), 'node → pod IPv4 after tuning changed the MAC').toBe(true);
    expect(ping(node.ns, weir.ipv6!), 'node → pod IPv6 after tuning changed the MAC').toBe(true);
    expect(ping(weir.ns, NODE_IPV4), 'pod → node IPv4 after tuning changed the MAC').toBe(true);

    delChain(node, conf, rt, final);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    expect(readdir(path.join(node.tmp, 'tuning')), 'tuning state files').toEqual([]);
  });

  it('weir → portmap → bandwidth → tuning: each plugin gets its own runtimeConfig; DEL in reverse leaves nothing', async () => {
    const node = nodes.node();
    const conf = list(node, portmap, bandwidth, tuning(node));
    // The runtime also offers a `mac` capability arg: tuning does not declare it, so libcni does not pass it.
    const { rt, add, weir, final } = addChain(node, conf, { portMappings: PORT_MAPPINGS, bandwidth: BANDWIDTH, mac: TUNED_MAC });
    expect(add.steps.map((s) => s.stdin['runtimeConfig'])).toEqual([undefined, { portMappings: PORT_MAPPINGS }, { bandwidth: BANDWIDTH }, undefined]);
    expect(weir.ns.sh(['cat', '/proc/sys/net/ipv4/conf/eth0/rp_filter']).trim()).toBe('2');
    expect(final!.interfaces![1]).toEqual(weir.result.interfaces![1]);

    // The whole datapath: a client on the node, through portmap's DNAT and bandwidth's shaping, to the pod.
    expect(await tcpExchange(weir.ns, node.ns, NODE_IPV4, POD_PORT, 'whole chain\n', HOST_PORT)).toBe('whole chain\n');
    // weir's CHECK with the final result (portmap 1.1.1's CHECK is broken, see above).
    const check = checkNetworkList(node.name, { ...conf, plugins: [conf.plugins[0]!, conf.plugins[2]!, conf.plugins[3]!] }, rt, final);
    expect(check.ok, check.error).toBe(true);

    delChain(node, conf, rt, final);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    expect(natRules(node, 'iptables')).not.toContain(`${HOST_PORT}`);
    expect(natRules(node, 'ip6tables')).not.toContain(`${HOST_PORT}`);
    expect(hasLink(weir.ns, 'eth0')).toBe(false);
    // DEL of the whole chain is idempotent.
    delChain(node, conf, rt, final);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });
});
