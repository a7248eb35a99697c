// `nft monitor` trace lines, and what the `inet weir` chains decided for a
// traced packet. Pure. Lines look like (nft 1.0.6):
//
//   trace id 1261aa31 inet weirctl_trace prerouting packet: iif "weirc3…" … tcp flags == syn …
//   trace id 1261aa31 inet weir pod_egress rule ip saddr vmap @egress4 (verdict goto prof_…_eg)
//   trace id 1261aa31 inet weir prof_…_in rule counter packets 0 bytes 0 drop comment "ingress default deny" (verdict drop)
//   trace id 1261aa31 inet weir pod_ingress policy accept
//   trace id 15a9c910 inet weirctl_trace prerouting unknown rule handle 2 (verdict continue)
//
// The kernel reuses trace ids, so a `packet:` line of the tracing table
// starts a new packet even under an id seen before.

export interface TraceEvent {
  id: string;
  family: string;
  table: string;
  chain: string;
  kind: 'packet' | 'rule' | 'policy' | 'verdict' | 'other';
  /** rule/policy/verdict: accept, drop, continue, jump, goto, return, … */
  verdict?: string;
  /** jump/goto target. */
  target?: string;
  /** The rule text (rule events), or the packet description (packet events). */
  text: string;
}

const HEAD = /^trace id (\S+) (\S+) (\S+) (\S+) (.*)$/;

export function parseTraceLine(line: string): TraceEvent | undefined {
  const m = HEAD.exec(line.trim());
  if (!m) return undefined;
  const [, id, family, table, chain, rest] = m as unknown as [string, string, string, string, string, string];
  const base = { id, family, table, chain };
  if (rest.startsWith('packet:')) return { ...base, kind: 'packet', text: rest.slice('packet:'.length).trim() };
  const rule = /^(?:unknown )?rule (.*) \(verdict (\S+)(?: (\S+))?\)$/.exec(rest);
  if (rule) return { ...base, kind: 'rule', text: rule[1] as string, verdict: rule[2] as string, ...(rule[3] ? { target: rule[3] } : {}) };
  const pol = /^policy (\S+)$/.exec(rest.trim());
  if (pol) return { ...base, kind: 'policy', verdict: pol[1] as string, text: rest.trim() };
  const v = /^verdict (\S+)(?: (\S+))?$/.exec(rest.trim());
  if (v) return { ...base, kind: 'verdict', verdict: v[1] as string, ...(v[2] ? { target: v[2] } : {}), text: rest.trim() };
  return { ...base, kind: 'other', text: rest.trim() };
}

/** One traced packet: its events in order. */
export interface TracedPacket {
  id: string;
  /** The packet line of the tracing table (the packet as it entered prerouting). */
  packet: string | undefined;
  events: TraceEvent[];
  lines: string[];
}

/** Groups the trace lines of `text` into packets; `traceTable` is the table that sets nftrace (`inet weirctl_trace`). */
export function splitPackets(lines: readonly string[], traceTable = 'inet weirctl_trace'): TracedPacket[] {
  const out: TracedPacket[] = [];
  const current = new Map<string, TracedPacket>();
  for (const line of lines) {
    const e = parseTraceLine(line);
    if (!e) continue;
    const fresh = e.kind === 'packet' && `${e.family} ${e.table}` === traceTable;
    let p = current.get(e.id);
    if (!p || fresh) {
      p = { id: e.id, packet: fresh ? e.text : undefined, events: [], lines: [] };
      current.set(e.id, p);
      out.push(p);
    }
    p.events.push(e);
    p.lines.push(line.trim());
  }
  return out;
}

export interface WeirJudgement {
  /** The packet reached at least one chain of the weir table. */
  weirSeen: boolean;
  /** How each base chain of the weir table the packet passed ended (e.g. pod_egress: accept). */
  bases: Record<string, 'accept' | 'drop' | undefined>;
  /** Where the weir table dropped it. */
  droppedAt?: { chain: string; rule: string };
  /** A drop by another table (not weir's policy). */
  otherDrop?: { table: string; chain: string; rule: string };
}

/**
 * What the weir table (and anything else) did with one traced packet. A
 * base chain ends with the first accept or drop in it or the chains it
 * jumps to, or with its policy; `accept` ends only that base chain (the
 * packet then meets the next one), `drop` is final.
 */
export function judgePacket(p: TracedPacket, weirTable = 'inet weir'): WeirJudgement {
  const j: WeirJudgement = { weirSeen: false, bases: {} };
  let base: string | undefined;
  let decided = false;
  for (const e of p.events) {
    const table = `${e.family} ${e.table}`;
    if (table !== weirTable) {
      if (e.kind === 'packet') base = undefined;
      const dropped = (e.kind === 'rule' || e.kind === 'policy' || e.kind === 'verdict') && e.verdict === 'drop';
      if (dropped && !j.otherDrop && !j.droppedAt) j.otherDrop = { table, chain: e.chain, rule: e.text };
      continue;
    }
    j.weirSeen = true;
    if (e.kind === 'packet') {
      base = e.chain;
      decided = false;
      j.bases[base] = undefined;
      continue;
    }
    if (base === undefined || decided) continue;
    if (e.verdict === 'accept' || e.verdict === 'drop') {
      j.bases[base] = e.verdict;
      decided = true;
      if (e.verdict === 'drop' && !j.droppedAt) j.droppedAt = { chain: e.chain, rule: e.kind === 'policy' ? `policy drop of ${e.chain}` : e.text };
    }
  }
  return j;
}

export type KernelVerdict = 'allow' | 'deny';

/**
 * The base chains of a packet delivered to this node (the input hook):
 * a pod's traffic to its node's own address, to a hostNetwork pod, or to
 * the node's services never meets the forward hook's pod chains.
 */
const LOCAL_BASES = ['host_input', 'pod_local'];
const deliveredLocally = (j: WeirJudgement): boolean => LOCAL_BASES.some((c) => c in j.bases);

/**
 * The kernel's verdict from a judgement: deny when anything dropped it;
 * allow when pod_egress (and, unless only egress is judged here,
 * pod_ingress) accepted it, or, for a packet delivered to this node, when
 * every weir base chain it met accepted it; undefined when the packet did
 * not get that far (or never met the weir table).
 */
export function verdictOf(j: WeirJudgement, scope: 'egress' | 'both'): KernelVerdict | undefined {
  if (j.droppedAt || j.otherDrop) return 'deny';
  const eg = j.bases['pod_egress'];
  const ing = j.bases['pod_ingress'];
  if (scope === 'egress') return eg === 'accept' ? 'allow' : undefined;
  if (deliveredLocally(j)) return Object.values(j.bases).every((v) => v === 'accept') ? 'allow' : undefined;
  return eg === 'accept' && ing === 'accept' ? 'allow' : undefined;
}

/** Whether a packet's trace is complete enough to judge (a drop, pod_ingress decided, or an input chain decided). */
export function settled(j: WeirJudgement): boolean {
  return j.droppedAt !== undefined || j.otherDrop !== undefined || j.bases['pod_ingress'] !== undefined || LOCAL_BASES.some((c) => j.bases[c] !== undefined);
}

/** The packet the probe sent: for TCP the first SYN, else the first packet the tracing table saw. */
export function probePacket(packets: readonly TracedPacket[], protocol: string): TracedPacket | undefined {
  const traced = packets.filter((p) => p.packet !== undefined);
  if (protocol === 'TCP') return traced.find((p) => /tcp flags == syn\b/.test(p.packet ?? ''));
  return traced[0];
}
