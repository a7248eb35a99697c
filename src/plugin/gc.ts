// CNI GC: frees every allocation of this network that the runtime no longer
// names in cni.dev/valid-attachments, and removes the host veths left behind.
import type { WeirNetConf } from '../cni/config.ts';
import { isNotFound } from '../errors.ts';
import { gc } from '../ipam/allocator.ts';
import { NetlinkHandle } from '../netlink/handle.ts';
import { storeFor } from './attachment.ts';
import { hostVethName, isHostVethName, parseHostVethAlias } from './names.ts';

export interface GcReport {
  releasedAddresses: string[];
  removedLinks: string[];
}

export function cmdGc(conf: WeirNetConf): GcReport {
  const valid = conf.validAttachments ?? [];
  const keep = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
  const released = gc(storeFor(conf), valid);
  const releasedNames = new Set(released.map((r) => hostVethName(r.containerID, r.ifname)));

  const removedLinks: string[] = [];
  const host = NetlinkHandle.open();
  try {
    for (const link of host.linkList()) {
      if (!isHostVethName(link.name) || keep.has(link.name)) continue;
      // Ours for certain: its alias names this network, or its name is that
      // of an allocation just released. A veth with no alias yet may belong
      // to an ADD of another weir network still in flight: leave it.
      const owner = parseHostVethAlias(link.alias);
      if (owner?.network !== conf.name && !releasedNames.has(link.name)) continue;
      try {
        host.linkDelete(link.index);
        removedLinks.push(link.name);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  } finally {
    host.close();
  }
  return { releasedAddresses: released.flatMap((r) => r.addresses), removedLinks };
}
