// What every verb derives from one invocation: the IPAM store and ranges of
// the network, and the attachment's identity.
import type { WeirNetConf } from '../cni/config.ts';
import type { CniArgs, CniEnv } from '../cni/env.ts';
import { formatCidr } from '../ip.ts';
import type { Attachment } from '../ipam/allocator.ts';
import { DiskStore } from '../ipam/disk-store.ts';
import { PodRange } from '../ipam/range.ts';

/** The environment of ADD and CHECK (a netns is required), and of DEL (it may be gone). */
export type PodEnv = Extract<CniEnv, { command: 'ADD' | 'CHECK' }>;
export type DelEnv = Extract<CniEnv, { command: 'DEL' }>;

export const storeFor = (conf: WeirNetConf): DiskStore => new DiskStore(conf.dataDir, conf.name);
export const rangesFor = (conf: WeirNetConf): PodRange[] => conf.podCIDRs.map((c) => PodRange.parse(formatCidr(c)));

export function attachmentOf(conf: WeirNetConf, env: { containerId: string; ifname: string; args: CniArgs }): Attachment {
  const { namespace, name, uid } = env.args.k8s;
  return {
    network: conf.name,
    containerID: env.containerId,
    ifname: env.ifname,
    ...(namespace ? { podNamespace: namespace } : {}),
    ...(name ? { podName: name } : {}),
    ...(uid ? { podUid: uid } : {}),
  };
}
