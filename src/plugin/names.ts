// Deterministic names and constants of the pod wiring. Pure, so DEL, GC and
// weirctl can find what ADD made from the attachment alone.
import { createHash } from 'node:crypto';

/** Host-side veth names start with this; weirctl and GC look for it. */
export const HOST_VETH_PREFIX = 'weir';

/**
 * The host end of a pod's veth: `weir` + 11 hex digits of
 * sha256(containerID/ifname). IFNAMSIZ is 16 with the NUL, so 15 characters
 * is the most a name can have; 44 bits of hash make a collision between two
 * pods of one node vanishingly unlikely.
 */
export function hostVethName(containerID: string, ifname: string): string {
  return HOST_VETH_PREFIX + createHash('sha256').update(`${containerID}/${ifname}`).digest('hex').slice(0, 11);
}

export const isHostVethName = (name: string): boolean => /^weir[0-9a-f]{11}$/.test(name);

// The kernel keeps at most IFALIASZ-1 bytes of an alias.
const IFALIASZ = 256;

/**
 * The host veth's alias: `weir/<network>/<namespace>/<pod>/<containerID>`,
 * so `ip link` shows whose interface it is and GC knows which network owns
 * it. Network names and Kubernetes names contain no `/`.
 */
export function hostVethAlias(a: { network: string; podNamespace?: string | undefined; podName?: string | undefined; containerID: string }): string {
  const alias = `weir/${a.network}/${a.podNamespace ?? ''}/${a.podName ?? ''}/${a.containerID}`;
  return Buffer.byteLength(alias) < IFALIASZ ? alias : alias.slice(0, IFALIASZ - 1);
}

export interface ParsedAlias {
  network: string;
  podNamespace: string;
  podName: string;
  containerID: string;
}

export function parseHostVethAlias(alias: string | undefined): ParsedAlias | undefined {
  const parts = alias?.split('/');
  if (parts?.length !== 5 || parts[0] !== 'weir') return undefined;
  const [, network, podNamespace, podName, containerID] = parts as [string, string, string, string, string];
  return { network, podNamespace, podName, containerID };
}

/**
 * Every host veth carries this MAC, so a pod's gateway neighbour entry is one
 * constant (Calico does the same). Locally administered, unicast.
 */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';

/**
 * The pod's next hop. Pods get /32 and /128 addresses and a default route via
 * a link-local gateway that every host veth holds (IPv4 with scope host, so
 * the node never uses it as a source), so the pod resolves it on its own
 * link. Proxy ARP, Calico's way, would not answer in a node namespace without
 * a default route (NOTES.md). A permanent neighbour entry in the pod saves
 * the first ARP/NDP exchange.
 */
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::1';

/** The route protocol number (RTPROT_*) that marks routes weir made; 0x57 is 'W'. */
export const RTPROT_WEIR = 0x57;

/**
 * The pod MAC from its IPv4 address (0a:58:a.b.c.d), the convention of the
 * CNI reference plugins and kubenet: stable across restarts of one address,
 * and easy to read in a packet capture.
 */
export function podMac(ipv4Bytes: Uint8Array | undefined): string | undefined {
  if (ipv4Bytes?.length !== 4) return undefined;
  return ['0a', '58', ...Array.from(ipv4Bytes, (b) => b.toString(16).padStart(2, '0'))].join(':');
}
