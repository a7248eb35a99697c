// The node's kernel as the agent holds it: the rtnetlink handle, the policy
// engine over libnftables and the element writer, and the reconciler's other
// effects (NodeNetworking): the conflist, the routes to the other nodes, and
// the conntrack purge.
import path from 'node:path';
import { ConntrackHandle } from '../../netlink/conntrack-handle.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import { LibNftables } from '../../nft/libnftables.ts';
import { NetlinkElementWriter } from '../../nft/netlink-elements.ts';
import { PolicyEngine } from '../../policy/engine.ts';
import { renderConflist, writeFileAtomic } from '../cniconf.ts';
import { type AgentConfig, agentSocketPath } from '../config.ts';
import type { DnsAgent } from '../dns-agent.ts';
import type { NodeNetworking } from '../reconciler.ts';
import { desiredNodeRoutes, reconcileNodeRoutes } from '../routes.ts';

export interface NodeKernel {
  readonly netlink: NetlinkHandle;
  /** The engine's libnftables context (its cache of the table is dropped after a full sync). */
  readonly nft: LibNftables;
  readonly elements: NetlinkElementWriter;
  readonly engine: PolicyEngine;
  readonly net: NodeNetworking;
  /** Closes the sockets. */
  close(): void;
}

/** Opens the node's kernel side; `dns` is the DNS path once it runs, whose learned addresses the purge must see. */
export function openNode(cfg: AgentConfig, dns: () => DnsAgent | undefined): NodeKernel {
  const netlink = NetlinkHandle.open();
  let conntrack: ConntrackHandle | undefined;
  // Element-only changes (pods coming, going, relabelled) go to nf_tables over netlink, the rest through libnftables.
  const nft = new LibNftables();
  const elements = NetlinkElementWriter.open();
  const engine = new PolicyEngine(nft, { nodeName: cfg.nodeName, nflogGroup: cfg.nflogGroup, logRate: cfg.denyLogRate }, elements);
  const net = nodeNetworking(
    cfg,
    netlink,
    () => {
      conntrack ??= ConntrackHandle.open();
      return conntrack;
    },
    dns,
  );
  return {
    netlink,
    nft,
    elements,
    engine,
    net,
    close() {
      netlink.close();
      conntrack?.close();
    },
  };
}

function nodeNetworking(cfg: AgentConfig, netlink: NetlinkHandle, conntrack: () => ConntrackHandle, dns: () => DnsAgent | undefined): NodeNetworking {
  return {
    writeCniConfig: (podCIDRs) =>
      writeFileAtomic(
        path.join(cfg.cniConfDir, cfg.cniConfName),
        renderConflist({ podCIDRs, dataDir: cfg.dataDir, agentSocket: agentSocketPath(cfg.runDir), ...(cfg.mtu ? { mtu: cfg.mtu } : {}) }),
      ),
    reconcileRoutes: (nodes, self) => {
      const r = reconcileNodeRoutes(netlink, desiredNodeRoutes(nodes, self));
      return {
        changed: r.added.length + r.replaced.length + r.removed.length,
        errors: r.errors.map((e) => `${e.op} ${e.dst}${e.node ? ` (node ${e.node})` : ''}: ${e.reason}`),
      };
    },
    purgeConnections: (addresses, judge) => {
      const learned = dns();
      const stillAllowed = learned ? learned.judge(judge) : judge;
      return conntrack().deleteWhere((e) => {
        // Policy judges the connection after DNAT (kube-proxy's Service
        // translation): the real destination is the source of the reply.
        const src = e.orig.src;
        const dst = e.reply.src;
        const dport = e.reply.sport;
        if (!addresses.has(src) && !addresses.has(dst)) return false;
        return !stillAllowed({ src, dst, proto: e.orig.proto, ...(dport !== undefined ? { dport } : {}) });
      });
    },
  };
}
