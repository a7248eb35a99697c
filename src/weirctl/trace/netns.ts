// Finds a pod's network namespace from the node side, for weirctl trace:
// the namespace pinned under /var/run/netns or /run/netns (where CRI runtimes
// and `ip netns` keep them), or else any process's, whose interface `ifname`
// is the peer of the pod's host veth. Interface indexes are per namespace, so index equality alone
// can match a stranger (every pod's eth0 may be index 2 with peer 2): the
// host veth's IFLA_LINK_NETNSID must also be the id this namespace gives the
// candidate (RTM_GETNSID with its fd), and the two IFLA_LINKs must point at
// each other.
import fs from 'node:fs';
import path from 'node:path';
import { attrToS32, attrU32, parseAttrs } from '../../netlink/message.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import { Netns } from '../../sys/netns.ts';

export const NETNS_DIRS = ['/var/run/netns', '/run/netns'];

const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;

/** The id the handle's namespace gives the namespace open as `fd`; undefined when none is assigned. */
export function nsidOf(h: NetlinkHandle, fd: number): number | undefined {
  // struct rtgenmsg (1 byte, aligned to 4), then NETNSA_FD.
  const body = Buffer.concat([Buffer.alloc(4), attrU32(NETNSA_FD, fd)]);
  const reply = h.request('get nsid', RTM_GETNSID, 0, body).find((m) => m.type === RTM_NEWNSID);
  if (!reply) return undefined;
  const id = attrToS32(parseAttrs(reply.payload.subarray(4)).get(NETNSA_NSID));
  return id === undefined || id < 0 ? undefined : id;
}

export interface FoundNetns {
  netns?: Netns;
  why: string;
}

/**
 * Where to look: the pinned files first (cheap), then the namespace of every
 * process (a pod's sandbox always runs one). The second is what finds a pod
 * whose runtime pins its namespace in a mount namespace this process does
 * not share: from an agent container without the host's /run, or from the
 * machine for a kind node's pods.
 */
function* candidates(dirs: readonly string[]): Generator<string> {
  for (const dir of dirs) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir).sort();
    } catch {
      // no such folder here
    }
    for (const n of names) yield path.join(dir, n);
  }
  let pids: string[] = [];
  try {
    pids = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    // no /proc
  }
  for (const pid of pids) yield `/proc/${pid}/ns/net`;
}

/** The namespace whose `ifname` is the peer of host veth `hostVeth` of the calling namespace. The caller closes it. */
export function findPodNetns(hostVeth: string, ifname: string, dirs: readonly string[] = NETNS_DIRS): FoundNetns {
  const host = NetlinkHandle.open();
  try {
    const hv = host.linkGet({ name: hostVeth });
    if (!hv) return { why: `the pod's host veth ${hostVeth} does not exist in this network namespace` };
    if (hv.linkNetnsId === undefined) return { why: `${hostVeth} has no peer in another network namespace` };
    const self = Netns.current();
    const seen = new Set<string>([self.identity]);
    self.close();
    for (const file of candidates(dirs)) {
      let ns: Netns;
      try {
        ns = Netns.open(file);
      } catch {
        continue; // not a namespace, being deleted, or a process gone
      }
      if (seen.has(ns.identity)) {
        ns.close();
        continue;
      }
      seen.add(ns.identity);
      if (matches(host, hv, ns, ifname)) return { netns: ns, why: `found ${ns.path}` };
      ns.close();
    }
    return { why: `no network namespace under ${dirs.join(' or ')}, nor of any process this one can see, holds the peer of ${hostVeth} as ${ifname}` };
  } finally {
    host.close();
  }
}

function matches(host: NetlinkHandle, hv: { index: number; parentIndex?: number; linkNetnsId?: number }, ns: Netns, ifname: string): boolean {
  try {
    if (nsidOf(host, ns.fd) !== hv.linkNetnsId) return false;
    const h = NetlinkHandle.open(ns);
    try {
      const l = h.linkGet({ name: ifname });
      return l !== undefined && l.parentIndex === hv.index && hv.parentIndex === l.index;
    } finally {
      h.close();
    }
  } catch {
    return false;
  }
}
