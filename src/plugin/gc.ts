// CNI GC: frees every allocation of this network that the runtime no longer
// names in cni.dev/valid-attachments, and removes the host veths left behind.
// The agent's own IPAM sweep (agent/ipam-sweep.ts) runs the same
// collectGarbage() with the attachments it decided to keep.
import type { WeirNetConf } from '../cni/config.ts';
import { isNotFound } from '../errors.ts';
import { type AttachmentId, gc } from '../ipam/allocator.ts';
import type { Store } from '../ipam/store.ts';
import { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { storeFor } from './attachment.ts';
import { hostVethName, isHostVethName, parseHostVethAlias } from './names.ts';

export interface GcReport {
  releasedAddresses: string[];
  removedLinks: string[];
}

export interface GcOptions {
  /** The host namespace's handle (opened and closed here when not given). */
  host?: NetlinkHandle;
  /**
   * Also remove host veths of this network that no kept attachment owns
   * (the runtime's GC: it names every live attachment). Without it, only the
   * veths of the allocations just released go.
   */
  unownedVeths?: boolean;
}

export function cmdGc(conf: WeirNetConf): GcReport {
  return collectGarbage(storeFor(conf), conf.name, conf.validAttachments ?? [], { unownedVeths: true });
}

/** Frees every allocation of `network` not in `valid`, then removes the host veths left behind. */
export function collectGarbage(store: Store, network: string, valid: readonly AttachmentId[], o: GcOptions = {}): GcReport {
  const keep = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
  const released = gc(store, valid);
  const releasedNames = new Set(released.map((r) => hostVethName(r.containerID, r.ifname)));

  const removedLinks: string[] = [];
  const host = o.host ?? NetlinkHandle.open();
  try {
    for (const link of host.linkList()) {
      if (!isHostVethName(link.name) || keep.has(link.name)) continue;
      // Ours for certain: its alias names this network, or its name is that
      // of an allocation just released. A veth with no alias yet may belong
      // to an ADD of another weir network still in flight: leave it.
      const owner = parseHostVethAlias(link.alias);
      if (!releasedNames.has(link.name) && (o.unownedVeths !== true || owner?.network !== network)) continue;
      try {
        host.linkDelete(link.index);
        removedLinks.push(link.name);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  } finally {
    if (!o.host) host.close();
  }
  return { releasedAddresses: released.flatMap((r) => r.addresses), removedLinks };
}
