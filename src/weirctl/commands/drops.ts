// weirctl drops [--follow] [--limit N]: denied packets from the agent's drop
// log, with addresses resolved to pods (GET /state) and the denying pod's
// profile chain resolved to the policies that select it (GET /endpoints).
// Without --follow: newest first. With --follow: the backlog and then new
// drops in the order they happen (like tail -f), one JSON object per line
// with -o json, until interrupted.

import { METADATA_GUARD_CHAIN } from '../../policy/metadata-guard.ts';
import { type Context, CtlError, type DropRecord, type DropsReply } from '../context.ts';
import { type ChainInfo, canonical, chainIndex, nodeByIp, podByIp } from '../resolve.ts';
import { fixedRow, paint, renderTable } from '../table.ts';

export interface ResolvedDrop extends DropRecord {
  /** `namespace/name` of the source and destination, when they are pods (or `node NAME`). */
  srcPod?: string;
  dstPod?: string;
  /** The pod whose policy denied it: the destination for ingress, the source for egress. */
  pod?: string;
  /** The policies selecting that pod in that direction (their union is the profile chain). */
  policies: string[];
}

export interface DropIndex {
  pods: Map<string, string>;
  nodes: Map<string, string>;
  chains: Map<string, ChainInfo>;
}

export function resolveDrop(d: DropRecord, ix: DropIndex): ResolvedDrop {
  const who = (ip: string | undefined): string | undefined => {
    if (!ip) return undefined;
    const c = canonical(ip);
    const pod = ix.pods.get(c);
    if (pod) return pod;
    const node = ix.nodes.get(c);
    return node ? `node ${node}` : undefined;
  };
  const srcPod = who(d.src);
  const dstPod = who(d.dst);
  const chain = d.chain ? ix.chains.get(d.chain) : undefined;
  const out: ResolvedDrop = { ...d, policies: chain?.policies ?? [] };
  if (srcPod) out.srcPod = srcPod;
  if (dstPod) out.dstPod = dstPod;
  const denying = d.direction === 'ingress' ? dstPod : d.direction === 'egress' ? srcPod : undefined;
  const only = chain?.pods.length === 1 ? chain.pods[0] : undefined;
  if (denying && !denying.startsWith('node ')) out.pod = denying;
  else if (only !== undefined) out.pod = only;
  return out;
}

const endpoint = (pod: string | undefined, ip: string | undefined, port: number | undefined): string => {
  const host = ip === undefined ? '?' : ip.includes(':') && port !== undefined ? `[${ip}]` : ip;
  const addr = port === undefined ? host : `${host}:${port}`;
  return pod ? `${pod} (${addr})` : addr;
};

export const dropRow = (d: ResolvedDrop, color: boolean): string[] => [
  d.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
  d.audit ? paint(`${d.direction} (audit)`, 'yellow', color) : d.direction,
  endpoint(d.srcPod, d.src, d.sport),
  endpoint(d.dstPod, d.dst, d.dport),
  `${d.protocol ?? '?'}${d.flags?.length ? ` ${d.flags.join(',')}` : ''}`,
  d.pod ?? '-',
  d.policies.length ? d.policies.join(', ') : (d.chain ?? '-'),
];

/** Column widths of --follow, where rows are printed one at a time. */
const FOLLOW_WIDTHS = [20, 9, 32, 32, 9, 20];

export const DROP_HEADERS = ['TIME', 'DIRECTION', 'SOURCE', 'DESTINATION', 'PROTO', 'DENIED AT POD', 'BY POLICIES'];

export function formatDrops(drops: readonly ResolvedDrop[], color: boolean): string {
  if (drops.length === 0) return 'No denied packets logged.';
  return renderTable(
    DROP_HEADERS,
    drops.map((d) => dropRow(d, color)),
    { color },
  );
}

async function index(ctx: Context): Promise<DropIndex> {
  const [state, eps] = await Promise.all([ctx.state(), ctx.endpoints()]);
  return { pods: podByIp(state), nodes: nodeByIp(state), chains: chainIndex(eps.endpoints) };
}

async function fetchDrops(ctx: Context, query: string, timeoutMs = 5000): Promise<DropsReply> {
  const r = await ctx.call(`/drops?${query}`, { accept: [503], timeoutMs });
  if (r.status === 503) {
    throw new CtlError(`the agent's drop log is not running: ${(r.json as { error?: string } | undefined)?.error ?? r.text.trim()}`);
  }
  return r.json as DropsReply;
}

export async function runDrops(ctx: Context, limit: number): Promise<{ json: unknown; text: string }> {
  const [reply, ix] = await Promise.all([fetchDrops(ctx, `limit=${limit}`), index(ctx)]);
  const drops = reply.drops.map((d) => resolveDrop(d, ix));
  return { json: { last: reply.last, drops }, text: formatDrops(drops, ctx.opts.color) };
}

/** Prints the backlog, then long-polls for new drops until the process is interrupted. */
export async function followDrops(ctx: Context, limit: number, print: (s: string) => void): Promise<never> {
  const json = ctx.opts.output === 'json';
  let ix = await index(ctx);
  let fetchedAt = Date.now();
  const emit = (list: DropRecord[]): void => {
    for (const d of [...list].reverse()) {
      const r = resolveDrop(d, ix);
      print(json ? JSON.stringify(r) : fixedRow(dropRow(r, ctx.opts.color), FOLLOW_WIDTHS));
    }
  };
  const first = await fetchDrops(ctx, `limit=${limit}`);
  if (!json)
    print(
      fixedRow(
        DROP_HEADERS.map((h) => paint(h, 'bold', ctx.opts.color)),
        FOLLOW_WIDTHS,
      ),
    );
  emit(first.drops);
  let after = first.last;
  for (;;) {
    const r = await fetchDrops(ctx, `after=${after}&wait=30&limit=${Math.max(limit, 200)}`, 45_000);
    // A restarted agent counts from 0 again.
    if (r.last < after) after = 0;
    if (r.drops.length > 0) {
      // The metadata guard's chain is no profile: its drops need no fresh index.
      const unknown = r.drops.some(
        (d) => (d.src && !ix.pods.has(canonical(d.src))) || (d.chain && d.chain !== METADATA_GUARD_CHAIN && !ix.chains.has(d.chain)),
      );
      if (unknown || Date.now() - fetchedAt > 10_000) {
        ix = await index(ctx);
        fetchedAt = Date.now();
      }
      emit(r.drops);
    }
    after = Math.max(after, r.last);
  }
}
