// CNI CHECK: the attachment still looks as ADD left it, judged against
// prevResult (the final result of the whole chain, so a later plugin's
// legitimate changes, such as tuning's new MAC, are already in it). Only what
// weir owns is checked: other interfaces, routes or rules are not ours.
import type { WeirNetConf } from '../cni/config.ts';
import type { WeirResult } from '../cni/result.ts';
import { CheckFailedError, InvalidConfigError } from '../errors.ts';
import { formatIp, parseCidr, parseIp } from '../ip.ts';
import * as C from '../netlink/constants.ts';
import type { Route } from '../netlink/route.ts';
import { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { Netns } from '../sys/netns.ts';
import { type PodEnv, storeFor } from './attachment.ts';
import { GATEWAY4, GATEWAY6, HOST_VETH_MAC, hostVethName, RTPROT_WEIR } from './names.ts';

function fail(what: string): never {
  throw new CheckFailedError(what);
}
const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean => !!a && a.length === b.length && a.every((x, i) => x === b[i]);

export function cmdCheck(env: PodEnv, conf: WeirNetConf): void {
  const prev: WeirResult | undefined = conf.prevResult;
  if (!prev) throw new InvalidConfigError('prevResult: required for CHECK');

  const store = storeFor(conf);
  const { record, held } = store.withLock(() => ({
    record: store.findByAttachment(env.containerId, env.ifname),
    held: new Set(store.heldAddresses(env.containerId, env.ifname)),
  }));
  if (!record) fail(`no IPAM record for container ${env.containerId} interface ${env.ifname}`);
  // A record cut in half by a crash is found through its surviving file, but
  // the missing address is free for the next ADD to hand out.
  const notHeld = record.addresses.filter((a) => !held.has(formatIp(parseIp(a).bytes)));
  if (notHeld.length > 0) fail(`the IPAM store no longer holds ${notHeld.join(', ')} for this pod`);

  const podIfIndex = prev.interfaces.findIndex((i) => i.name === env.ifname && (i.sandbox === undefined || i.sandbox === env.netns));
  if (podIfIndex < 0) fail(`prevResult has no interface ${env.ifname} in ${env.netns}`);
  const podIf = prev.interfaces[podIfIndex]!;
  const prevIps = prev.ips.filter((ip) => ip.interface === podIfIndex).map((ip) => parseCidr(ip.address));
  const recorded = new Set(record.addresses.map((a) => formatIp(parseIp(a).bytes)));
  if (prevIps.length !== recorded.size || prevIps.some((ip) => !recorded.has(ip.address))) {
    fail(`prevResult addresses [${prevIps.map((i) => i.address).join(', ')}] differ from the IPAM record [${[...recorded].join(', ')}]`);
  }

  const podNs = Netns.open(env.netns);
  let pod: NetlinkHandle | undefined;
  const host = NetlinkHandle.open();
  try {
    pod = NetlinkHandle.open(podNs);
    const podLink = pod.linkGet({ name: env.ifname }) ?? fail(`interface ${env.ifname} is missing in ${env.netns}`);
    if (!(podLink.flags & C.IFF_UP)) fail(`interface ${env.ifname} is down`);
    if (podIf.mac && podLink.mac !== podIf.mac.toLowerCase()) fail(`interface ${env.ifname} has MAC ${podLink.mac}, prevResult says ${podIf.mac}`);

    const name = hostVethName(env.containerId, env.ifname);
    const hostLink = host.linkGet({ name }) ?? fail(`host veth ${name} is missing`);
    if (hostLink.kind !== 'veth') fail(`host interface ${name} is a ${hostLink.kind ?? 'unknown'} link, not a veth`);
    if (!(hostLink.flags & C.IFF_UP)) fail(`host veth ${name} is down`);
    if (hostLink.mac !== HOST_VETH_MAC) fail(`host veth ${name} has MAC ${hostLink.mac}, expected ${HOST_VETH_MAC}`);
    const hostAddrs = host.addrList().filter((a) => a.index === hostLink.index);

    const podAddrs = pod.addrList().filter((a) => a.index === podLink.index);
    const podRoutes = (f: 4 | 6) => pod!.routeList(f);
    const hostRoutes = { 4: host.routeList(4), 6: [] as Route[] };
    if (prevIps.some((ip) => ip.family === 6)) hostRoutes[6] = host.routeList(6);

    for (const ip of prevIps) {
      const full = ip.family === 4 ? 32 : 128;
      if (!podAddrs.some((a) => a.family === ip.family && a.prefix === full && sameBytes(a.address, ip.bytes))) {
        fail(`address ${ip.address}/${full} is missing on ${env.ifname}`);
      }
      const gw = parseIp(ip.family === 4 ? GATEWAY4 : GATEWAY6).bytes;
      // The pod resolves its gateway by ARP/NDP whenever its neighbour table
      // is flushed (a MAC change does that): the host end must own it.
      if (!hostAddrs.some((a) => a.family === ip.family && sameBytes(a.address, gw))) {
        fail(`host veth ${name} does not hold the pods' gateway ${formatIp(gw)}`);
      }
      if (!podRoutes(ip.family).some((r) => r.dstLen === 0 && r.oif === podLink.index && sameBytes(r.gateway, gw))) {
        fail(`the pod's default route via ${formatIp(gw)} dev ${env.ifname} is missing`);
      }
      if (!hostRoutes[ip.family].some((r) => r.dstLen === full && r.oif === hostLink.index && r.protocol === RTPROT_WEIR && sameBytes(r.dst, ip.bytes))) {
        fail(`the node's route to ${ip.address} via ${name} is missing`);
      }
    }
  } finally {
    pod?.close();
    host.close();
    podNs.close();
  }
}
