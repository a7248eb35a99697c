// CNI DEL: best effort and idempotent (spec 1.1.0). The netns, the veth or
// the IPAM record may each already be gone; the address is always freed.
import type { WeirNetConf } from '../cni/config.ts';
import { release } from '../ipam/allocator.ts';
import { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { type DelEnv, storeFor } from './attachment.ts';
import { unwirePod } from './wiring.ts';

export function cmdDel(env: DelEnv, conf: WeirNetConf): void {
  // The host end is found by name in the node's namespace, so DEL works
  // without the pod's netns; deleting it takes the pod end, its addresses
  // and both sides' routes with it. The veth goes first: were the address
  // freed first and DEL killed in between, a new pod could get the address
  // while the old host route still pointed at the stale veth.
  const host = NetlinkHandle.open();
  try {
    unwirePod(host, env.containerId, env.ifname);
  } finally {
    host.close();
  }
  release(storeFor(conf), env.containerId, env.ifname);
}
