// The agent's side of host-firewall mode (the rules are src/policy/host-compile.ts):
// finding a hostNetwork pod's cgroup on this node, the API server endpoints
// the agent must always reach, and listing HostFirewallPolicies, where a
// missing CRD means "no host policies" rather than an agent that never syncs.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import path from 'node:path';
import { tryParseIp } from '../ip.ts';
import type { HostCgroup } from '../policy/host-compile.ts';
import { type ApiAvailability, isUnavailable, type OptionalKind, optionalLister } from './optional-api.ts';
import type { Lister } from './reflector.ts';

/** Where nft resolves `socket cgroupv2` paths (nftables prefixes this, hard-coded). */
const NFT_CGROUP_BASE = '/sys/fs/cgroup';

export interface CgroupResolver {
  /** The cgroup of a pod by UID, when it exists now. */
  of(uid: string): HostCgroup | undefined;
  /** Why no pod can be resolved at all, if so. */
  readonly unsupported: string | undefined;
}

/** The cgroup v2 root under `root`: `root` itself, or its `unified` directory on a hybrid layout. */
export function cgroup2Root(root: string): string | undefined {
  for (const c of [root, path.join(root, 'unified')]) if (fs.existsSync(path.join(c, 'cgroup.controllers'))) return c;
  return undefined;
}

/**
 * Resolves a pod's cgroup from templates relative to the cgroup v2 root:
 * `{uid}` is the pod UID, `{uid_}` the UID with dashes as underscores (the
 * systemd driver's slice names). The first template that exists wins, so one
 * can list a template per QoS class.
 */
export function cgroupResolver(root: string, templates: readonly string[]): CgroupResolver {
  if (templates.length === 0) {
    return {
      of: () => undefined,
      unsupported: "no --host-network-cgroup-template: hostNetwork pods' egress is not attributed, so their egress policies are not enforced",
    };
  }
  const v2 = cgroup2Root(root);
  if (!v2)
    return { of: () => undefined, unsupported: `no cgroup v2 hierarchy at ${root} (nft socket cgroupv2 needs one): hostNetwork pods' egress is not enforced` };
  return {
    unsupported: undefined,
    of: (uid) => {
      if (!/^[0-9a-fA-F-]+$/.test(uid)) return undefined;
      for (const t of templates) {
        const rel = t
          .replaceAll('{uid}', uid)
          .replaceAll('{uid_}', uid.replaceAll('-', '_'))
          .replace(/^\/+|\/+$/g, '');
        const abs = path.join(v2, rel);
        try {
          if (!fs.statSync(abs).isDirectory()) continue;
        } catch {
          continue;
        }
        return { path: path.relative(NFT_CGROUP_BASE, abs), level: rel.split('/').filter(Boolean).length };
      }
      return undefined;
    },
  };
}

/** The API server as the agent dials it (kubeconfig server URL), resolved to addresses. */
export async function apiServerEndpoints(server: string | undefined): Promise<{ ip: string; port: number }[]> {
  if (!server) return [];
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    return [];
  }
  const port = Number(u.port || (u.protocol === 'http:' ? 80 : 443));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (tryParseIp(host)) return [{ ip: host, port }];
  try {
    return (await dns.lookup(host, { all: true })).map((a) => ({ ip: a.address, port }));
  } catch {
    return [];
  }
}

/** HostFirewallPolicies: an optional kind (optional-api.ts). */
export type HostPolicyAvailability = ApiAvailability;
export { isUnavailable };

export const HOST_POLICY_KIND: OptionalKind = { resource: 'hostfirewallpolicies.weir.dev', kindName: 'HostFirewallPolicy', without: 'no host policies' };

/**
 * A Lister for the reflector that turns "CRD not installed" (404) and
 * "forbidden" (403) into an empty list, so the agent keeps enforcing
 * NetworkPolicy; `state` says which, for /status.
 */
export function hostPolicyLister<T>(
  list: Lister<T>,
  state: HostPolicyAvailability,
  changed?: (s: ApiAvailability, was: boolean | undefined) => void,
): Lister<T> {
  return optionalLister(list, state, HOST_POLICY_KIND, changed);
}
