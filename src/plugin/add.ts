// CNI ADD: an address from the node's pod range, then the veth wiring. Any
// failure part-way releases a newly taken address and removes the veth, so a
// failed ADD leaves nothing behind (the runtime's DEL would clean it too).
import type { WeirNetConf } from '../cni/config.ts';
import type { WeirResult } from '../cni/result.ts';
import { InvalidEnvironmentError } from '../errors.ts';
import { allocate, release } from '../ipam/allocator.ts';
import { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { Netns } from '../sys/netns.ts';
import { attachmentOf, type PodEnv, rangesFor, storeFor } from './attachment.ts';
import { GATEWAY4, GATEWAY6 } from './names.ts';
import { ensureForwarding, wirePod } from './wiring.ts';

export function cmdAdd(env: PodEnv, conf: WeirNetConf): WeirResult {
  const podNs = Netns.open(env.netns);
  const closers: Array<{ close(): void }> = [podNs];
  try {
    const self = Netns.current();
    closers.push(self);
    // A pod wired into the node's own namespace would put eth0 and its
    // addresses on the node: refuse rather than break the host.
    if (podNs.sameAs(self)) throw new InvalidEnvironmentError(`CNI_NETNS ${env.netns} is the plugin's own network namespace, not a pod's`);

    // Opening the pod's handle enters its namespace once: a file that is no
    // network namespace fails here, before any address is taken.
    const pod = NetlinkHandle.open(podNs);
    closers.push(pod);
    const host = NetlinkHandle.open();
    closers.push(host);

    const store = storeFor(conf);
    const attachment = attachmentOf(conf, env);
    const { record, fresh } = store.withLock(() => {
      const fresh = store.findByAttachment(env.containerId, env.ifname) === undefined;
      return { record: allocate(store, rangesFor(conf), attachment), fresh };
    });
    try {
      ensureForwarding(conf.podCIDRs.map((c) => c.family));
      const wired = wirePod(host, pod, podNs, { ...attachment, addresses: record.addresses, mtu: conf.mtu });
      return {
        interfaces: [
          { name: wired.host.name, ...(wired.host.mac ? { mac: wired.host.mac } : {}), ...(conf.mtu ? { mtu: conf.mtu } : {}) },
          { name: env.ifname, ...(wired.pod.mac ? { mac: wired.pod.mac } : {}), sandbox: env.netns, ...(conf.mtu ? { mtu: conf.mtu } : {}) },
        ],
        ips: record.addresses.map((a) => {
          const v6 = a.includes(':');
          // The pod holds a host route (/32, /128), not the node's subnet:
          // every packet goes through the node, where policy is enforced.
          return { address: `${a}/${v6 ? 128 : 32}`, gateway: v6 ? GATEWAY6 : GATEWAY4, interface: 1 };
        }),
        routes: conf.podCIDRs.map((c) => (c.family === 4 ? { dst: '0.0.0.0/0', gw: GATEWAY4 } : { dst: '::/0', gw: GATEWAY6 })),
        dns: conf.dns ?? {},
      };
    } catch (e) {
      if (fresh) release(store, env.containerId, env.ifname);
      throw e;
    }
  } finally {
    for (const c of closers.reverse()) c.close();
  }
}
