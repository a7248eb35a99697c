// The pod's datapath, routed and bridgeless (as Calico and kindnet do): a veth
// pair per pod, the pod end holding /32 and /128 addresses with a default
// route via a link-local gateway, the host end holding a /32 (/128) route to
// the pod. Every step goes through netlink handles; no `ip` subprocesses.

import { isNotFound, NetlinkError } from '../errors.ts';
import { type IpBytes, parseIp } from '../ip.ts';
import * as C from '../netlink/constants.ts';
import type { Link } from '../netlink/link.ts';
import type { Route } from '../netlink/route.ts';
import type { Rtnl } from '../netlink/rtnl.ts';
import type { Netns } from '../sys/netns.ts';
import { ensureSysctl } from '../sys/sysctl.ts';
import { GATEWAY4, GATEWAY6, HOST_VETH_MAC, hostVethAlias, hostVethName, podMac, RTPROT_WEIR } from './names.ts';

export interface PodAttachment {
  network: string;
  containerID: string;
  ifname: string;
  podNamespace?: string | undefined;
  podName?: string | undefined;
}

export interface WireRequest extends PodAttachment {
  /** Bare pod addresses, at most one per family. */
  addresses: string[];
  mtu?: number | undefined;
}

export interface WiredPod {
  host: Link;
  pod: Link;
}

const gateway = (family: 4 | 6): IpBytes => parseIp(family === 4 ? GATEWAY4 : GATEWAY6);
const zero = (family: 4 | 6): Uint8Array => new Uint8Array(family === 4 ? 4 : 16);
const hostPrefix = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** The routes ADD puts in the pod, for CHECK to find again. */
export function podRoutes(family: 4 | 6, oif: number): Route[] {
  const gw = gateway(family);
  const onLink: Route[] =
    // IPv6 link-local gateways are on-link by definition; IPv4 needs a
    // scope-link host route to the gateway before the default route.
    family === 4 ? [{ family, dst: gw.bytes, dstLen: 32, oif, scope: C.RT_SCOPE_LINK, protocol: C.RTPROT_BOOT }] : [];
  return [...onLink, { family, dst: zero(family), dstLen: 0, gateway: gw.bytes, oif, protocol: C.RTPROT_BOOT }];
}

/** The host's route to one pod address. */
export function hostRoute(address: IpBytes, oif: number): Route {
  return { family: address.family, dst: address.bytes, dstLen: hostPrefix(address.family), oif, scope: C.RT_SCOPE_LINK, protocol: RTPROT_WEIR };
}

/** Removes the host end of an attachment's veth (its peer goes with it). Idempotent. */
export function unwirePod(host: Rtnl, containerID: string, ifname: string): boolean {
  const link = host.linkGet({ name: hostVethName(containerID, ifname) });
  if (!link) return false;
  try {
    host.linkDelete(link.index);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  return true;
}

/**
 * Creates and configures the veth pair. On any failure the host end is
 * deleted before the error propagates, which removes the pod end, its
 * addresses and routes, and the host routes with it. `sysctl` is the
 * sysctl writer (a test without a kernel passes its own).
 */
export function wirePod(host: Rtnl, pod: Rtnl, podNs: Netns, req: WireRequest, sysctl: typeof ensureSysctl = ensureSysctl): WiredPod {
  const addrs = req.addresses.map(parseIp);
  const v4 = addrs.find((a) => a.family === 4);
  const hasV6 = addrs.some((a) => a.family === 6);
  const name = hostVethName(req.containerID, req.ifname);

  // A veth of this name can only be a leftover of an earlier ADD of this same
  // attachment (a retry, or one killed part-way): start again from scratch.
  unwirePod(host, req.containerID, req.ifname);
  if (pod.linkGet({ name: req.ifname })) {
    throw new NetlinkError(`interface ${req.ifname} already exists in ${podNs.path}`, 17);
  }

  const peerMac = podMac(v4?.bytes);
  host.createVeth({
    name,
    peerName: req.ifname,
    peerNetnsFd: podNs.fd,
    mac: HOST_VETH_MAC,
    ...(peerMac ? { peerMac } : {}),
    ...(req.mtu ? { mtu: req.mtu } : {}),
  });
  try {
    const hostLink = host.linkGet({ name });
    const podLink = pod.linkGet({ name: req.ifname });
    if (!hostLink || !podLink) throw new NetlinkError(`veth ${name} vanished right after creation`, 19);

    if (hasV6) {
      // Without DAD the addresses are usable at once; with it the host's
      // link-local stays tentative for a second and NDP to the pod stalls.
      sysctl(`net/ipv6/conf/${name}/accept_dad`, '0');
      sysctl(`net/ipv6/conf/${req.ifname}/accept_dad`, '0', podNs);
    }
    // The kernel ignores IFLA_IFALIAS on creation; it must be set afterwards.
    host.linkSet(hostLink.index, { up: true, alias: hostVethAlias(req) });
    pod.linkSet(podLink.index, { up: true });

    for (const a of addrs) {
      // The host end owns the gateway, so the pod can always resolve it: the
      // permanent neighbour entry below saves the first ARP/NDP exchange, but
      // the kernel flushes even permanent entries when the pod's MAC changes
      // (e.g. the tuning plugin). IPv4 gets scope host, so the node never
      // picks 169.254.1.1 as the source of its own packets to pods.
      host.addrAdd(
        a.family === 4
          ? { family: 4, address: gateway(4).bytes, prefix: 32, index: hostLink.index, scope: C.RT_SCOPE_HOST }
          : { family: 6, address: gateway(6).bytes, prefix: 64, index: hostLink.index, scope: C.RT_SCOPE_LINK, flags: C.IFA_F_NODAD },
      );
      pod.addrAdd({ family: a.family, address: a.bytes, prefix: hostPrefix(a.family), index: podLink.index, flags: a.family === 6 ? C.IFA_F_NODAD : 0 });
      const gw = gateway(a.family);
      pod.neighReplace({ family: a.family, index: podLink.index, address: gw.bytes, mac: HOST_VETH_MAC, state: C.NUD_PERMANENT });
      for (const r of podRoutes(a.family, podLink.index)) pod.routeReplace(r);
      // Replace, not add: a stale route of a crashed earlier pod with this
      // address must not make the new pod fail.
      host.routeReplace(hostRoute(a, hostLink.index));
    }
    return { host: hostLink, pod: podLink };
  } catch (e) {
    unwirePod(host, req.containerID, req.ifname);
    throw e;
  }
}

/** Forwarding must be on in the node's namespace for routed pods to work at all. */
export function ensureForwarding(families: Iterable<4 | 6>): void {
  for (const f of new Set(families)) {
    if (f === 4) ensureSysctl('net/ipv4/ip_forward', '1');
    else ensureSysctl('net/ipv6/conf/all/forwarding', '1');
  }
}
