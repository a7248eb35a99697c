// Opening a netlink socket inside a network namespace: created while the
// thread is in `ns` (it stays bound to that namespace afterwards), bound,
// and asked for the kernel's extended-ack error text. Every handle
// (rtnetlink, ctnetlink, nflog) opens its socket here.
import * as libc from '../sys/libc.ts';
import { type Netns, inNetns } from '../sys/netns.ts';

export function openNetlinkSocket(protocol: number, ns?: Netns): number {
  const make = () => libc.socket(libc.AF_NETLINK, libc.SOCK_RAW, protocol);
  const fd = ns ? inNetns(ns, make) : make();
  try {
    const sa = Buffer.alloc(12);
    sa.writeUInt16LE(libc.AF_NETLINK, 0);
    libc.bind(fd, sa);
    libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, 1);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}
