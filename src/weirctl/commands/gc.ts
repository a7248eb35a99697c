// weirctl gc: repairs what `weirctl ipam` calls leaks. Under the IPAM
// store's lock (so no ADD or DEL changes the records meanwhile) it looks
// again, releases each leaked record with the allocator's release(), and
// deletes each host veth of this network that no record owns. A record
// whose pod is still in the API is never touched, nor one whose veth still
// exists (the runtime's DEL is the one to remove it).

import fs from 'node:fs';
import { isNotFound } from '../../errors.ts';
import { release } from '../../ipam/allocator.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import { type CommandResult, type Context, CtlError } from '../context.ts';
import { podKey } from '../resolve.ts';
import { paint } from '../table.ts';
import { allocations, findLeaks } from './ipam.ts';

export interface GcAction {
  action: 'released' | 'deleted-veth' | 'refused' | 'failed';
  /** Addresses of a record, or the veth name. */
  what: string;
  pod?: string;
  containerID?: string;
  reason: string;
}

export interface GcReport {
  network: string;
  actions: GcAction[];
}

export function formatGc(r: GcReport, color: boolean): string {
  if (r.actions.length === 0) return 'Nothing to repair: no leaked records or host veths.';
  return r.actions
    .map((a) => {
      const tag =
        a.action === 'released'
          ? paint('released', 'green', color)
          : a.action === 'deleted-veth'
            ? paint('deleted', 'green', color)
            : paint(a.action, 'red', color);
      const whose = a.pod ? ` of ${a.pod}` : '';
      return `${tag} ${a.action === 'deleted-veth' ? 'host veth' : 'record'} ${a.what}${whose}: ${a.reason}`;
    })
    .join('\n');
}

export async function runGc(ctx: Context): Promise<CommandResult> {
  const state = await ctx.state();
  const pods = new Map(state.pods.map((p) => [podKey(p), p.metadata?.uid]));
  const store = ctx.store();
  // Without the store every host veth would look unowned: refuse rather than unwire live pods.
  if (!fs.existsSync(store.dir)) throw new CtlError(`no IPAM store at ${store.dir}: refusing to repair anything (check --data-dir and --network)`);
  const actions: GcAction[] = [];
  const host = NetlinkHandle.open();
  try {
    store.withLock(() => {
      const links = host.linkList();
      const allocs = allocations(store.list(), pods, new Set(links.map((l) => l.name)));
      // Pods that are gone but still wired: the runtime's DEL is pending; say so, touch nothing.
      for (const a of allocs) {
        if (!a.podExists && a.hostVethPresent) {
          actions.push({
            action: 'refused',
            what: a.addresses.join(', '),
            ...(a.pod ? { pod: a.pod } : {}),
            containerID: a.containerID,
            reason: `the pod is not in the API but ${a.hostVeth} still exists; left for the runtime's DEL`,
          });
        }
      }
      const leaks = findLeaks(allocs, links, ctx.opts.network);
      for (const a of leaks.records) {
        // findLeaks only returns records whose pod is gone; check once more before touching anything.
        if (a.pod !== undefined && pods.has(a.pod) && a.podStatus !== 'replaced') {
          actions.push({ action: 'refused', what: a.addresses.join(', '), pod: a.pod, containerID: a.containerID, reason: 'the pod still exists in the API' });
          continue;
        }
        try {
          const freed = release(store, a.containerID, a.ifname);
          actions.push({
            action: 'released',
            what: (freed?.addresses ?? a.addresses).join(', '),
            ...(a.pod ? { pod: a.pod } : {}),
            containerID: a.containerID,
            reason: `the pod is not in the API and its host veth ${a.hostVeth} is gone`,
          });
        } catch (e) {
          actions.push({ action: 'failed', what: a.addresses.join(', '), containerID: a.containerID, reason: (e as Error).message });
        }
      }
      for (const v of leaks.veths) {
        try {
          host.linkDelete(v.index);
          actions.push({ action: 'deleted-veth', what: v.name, reason: `no IPAM record owns it${v.alias ? ` (alias ${v.alias})` : ''}` });
        } catch (e) {
          if (!isNotFound(e)) actions.push({ action: 'failed', what: v.name, reason: (e as Error).message });
        }
      }
    });
  } finally {
    host.close();
  }
  const report: GcReport = { network: ctx.opts.network, actions };
  const failed = actions.some((a) => a.action === 'failed');
  return { json: report, text: formatGc(report, ctx.opts.color), exitCode: failed ? 1 : 0 };
}
