// The DNS path wired into the agent (run.ts keeps only a few lines): after
// each sync it tells the path which pods' answers to hold and which domain
// sets the table holds, and it lets the conntrack purge see learned
// addresses, which the reconciler's snapshot of the API does not hold.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LibNftables } from '../nft/libnftables.ts';
import { dnsPlan } from '../policy/cnp-dns.ts';
import { type NormalizedClusterPolicy, normalizeClusterPolicies } from '../policy/cnp-normalize.ts';
import type { LocalEndpoint } from '../policy/compile.ts';
import { ipEndpoint, PolicyEvaluator } from '../policy/evaluator.ts';
import type { Ruleset } from '../policy/ruleset.ts';
import type { ClusterState, Protocol } from '../policy/types.ts';
import { DnsPath } from './dns.ts';
import { DnsKernel } from './dns-kernel.ts';

export interface DnsAgentDeps {
  readonly registry: Registry;
  readonly log: Logger;
  readonly state: () => ClusterState;
  readonly endpoints: () => readonly LocalEndpoint[];
  readonly applied: () => Ruleset | undefined;
}

type Connection = { src: string; dst: string; proto: number; dport?: number };
const PROTOCOLS: Record<number, Protocol> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

export interface DnsAgent {
  readonly path: DnsPath;
  afterSync(full: boolean): void;
  /** A purge judge that also allows what learned addresses allow. */
  judge(stillAllowed: (c: Connection) => boolean): (c: Connection) => boolean;
  stop(): Promise<void>;
}

/** Starts the DNS path; undefined (logged) when the queue cannot be bound, and domainNames rules then allow nothing. */
export function startDnsAgent(d: DnsAgentDeps): DnsAgent | undefined {
  const path = new DnsPath(new DnsKernel(new LibNftables()), d.registry, d.log);
  try {
    path.start();
  } catch (e) {
    d.log.warn({ err: (e as Error).message }, 'cannot read the DNS queue: domainNames peers of ClusterNetworkPolicies allow nothing');
    void path.stop().catch(() => undefined);
    return undefined;
  }
  let memo: { raw: ClusterState['clusterPolicies']; norm: NormalizedClusterPolicy[] } | undefined;
  const policies = (): NormalizedClusterPolicy[] => {
    const raw = d.state().clusterPolicies;
    const hit = memo;
    if (hit && hit.raw === raw) return hit.norm;
    const norm = normalizeClusterPolicies(raw ?? []).policies;
    memo = { raw, norm };
    return norm;
  };
  return {
    path,
    afterSync(full) {
      const applied = d.applied();
      path.afterSync(
        dnsPlan(policies(), d.endpoints(), (name) => applied?.sets.has(name) === true),
        full,
      );
    },
    judge(stillAllowed) {
      let ev: PolicyEvaluator | null | undefined;
      return (c) => {
        if (stillAllowed(c)) return true;
        if (ev === undefined) {
          const learned = path.domainAddresses();
          try {
            ev = learned.size === 0 ? null : new PolicyEvaluator({ ...d.state(), domainAddresses: learned });
          } catch {
            ev = null;
          }
        }
        const protocol = PROTOCOLS[c.proto];
        if (!ev || !protocol || c.dport === undefined) return false;
        try {
          return ev.evaluate({ src: ipEndpoint(c.src), dst: ipEndpoint(c.dst), protocol, port: c.dport }).allowed;
        } catch {
          return false;
        }
      };
    },
    stop: () => path.stop(),
  };
}
