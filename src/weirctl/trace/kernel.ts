// The kernel's own answer for weirctl trace. From a pod of this node:
//   1. find the pod's network namespace (netns.ts);
//   2. start `nft monitor` (ruleset events and traces) as a subprocess;
//   3. add a temporary table `inet weirctl_trace` whose prerouting chain
//      (priority -350, before conntrack) sets nftrace on exactly this flow;
//      the monitor's echo of that table tells us it is listening;
//   4. send one probe from inside the pod's namespace;
//   5. read the trace of the probe's first packet and take the verdict the
//      `inet weir` chains gave it;
//   6. always delete the temporary table and stop the monitor.
import { type ChildProcess, spawn } from 'node:child_process';
import type { IpFamily } from '../../ip.ts';
import { LibNftables } from '../../nft/libnftables.ts';
import type { Netns } from '../../sys/netns.ts';
import { judgePacket, type KernelVerdict, probePacket, settled, splitPackets, verdictOf } from './parse.ts';
import { type ProbeProtocol, sendProbe } from './probe.ts';

export const TRACE_TABLE = 'weirctl_trace';

export interface KernelAnswer {
  verdict?: KernelVerdict;
  method: 'nftrace' | 'unavailable';
  detail: string;
  /** How the answer was obtained, in one sentence. */
  how?: string;
  /** What was judged here: both directions, or only egress (destination on another node). */
  scope?: 'both' | 'egress';
  droppedAt?: { table: string; chain: string; rule: string };
  /** How each base chain of inet weir ended for the probe. */
  chains?: Record<string, 'accept' | 'drop' | undefined>;
  /** What the probe saw at the source (connected, refused, no answer…). */
  probe?: string;
  /** The pod's network namespace file. */
  netns?: string;
  /** The trace lines of the probe's packet. */
  trace?: string[];
}

/** The tracing rule for one flow (exported for tests). */
export function traceScript(t: { family: IpFamily; src: string; dst: string; protocol: ProbeProtocol; port: number }): string {
  const ip = t.family === 4 ? 'ip' : 'ip6';
  return [
    `add table inet ${TRACE_TABLE} { comment "weirctl trace: temporary, deleted when the trace ends"; }`,
    `add chain inet ${TRACE_TABLE} prerouting { type filter hook prerouting priority -350; policy accept; }`,
    `add rule inet ${TRACE_TABLE} prerouting ${ip} saddr ${t.src} ${ip} daddr ${t.dst} meta l4proto ${t.protocol.toLowerCase()} th dport ${t.port} meta nftrace set 1`,
  ].join('\n');
}

function tableExists(nft: LibNftables): boolean {
  try {
    nft.runScript(`list table inet ${TRACE_TABLE}`);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Monitor {
  lines: string[];
  stop(): void;
}

/** Appends each whole line of the child's stdout to `lines` as it comes; a partial line waits for its end. */
export function collectLines(child: ChildProcess, lines: string[]): void {
  let buf = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
}

function startMonitor(nftBin: string): Monitor {
  const child: ChildProcess = spawn(nftBin, ['monitor'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  collectLines(child, lines);
  child.stderr?.setEncoding('utf8').on('data', (d: string) => lines.push(`# nft: ${d.trim()}`));
  child.on('error', (e) => lines.push(`# nft: ${e.message}`));
  return {
    lines,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

export interface TraceRequest {
  netns: Netns;
  family: IpFamily;
  src: string;
  dst: string;
  protocol: ProbeProtocol;
  port: number;
  scope: 'both' | 'egress';
  /** The nft executable; default `nft` from PATH. */
  nftBin?: string;
  /** Probes to send before giving up on seeing one traced. */
  attempts?: number;
}

export async function kernelTrace(req: TraceRequest): Promise<KernelAnswer> {
  const how =
    `one ${req.protocol} probe from the pod's network namespace (${req.netns.path}) to ${req.dst} port ${req.port}, ` +
    `traced with nftrace set by a temporary table inet ${TRACE_TABLE} (prerouting, priority -350) and read from \`nft monitor\`; ` +
    'the verdict is what the chains of inet weir did with its first packet';
  const base: KernelAnswer = { method: 'nftrace', how, scope: req.scope, netns: req.netns.path, detail: '' };
  const nft = new LibNftables();
  const mon = startMonitor(req.nftBin ?? 'nft');
  let created = false;
  try {
    // The monitor's echo of our table's creation says it is listening.
    await sleep(50);
    if (tableExists(nft)) nft.runScript(`delete table inet ${TRACE_TABLE}`);
    nft.runScript(traceScript(req));
    created = true;
    for (let t = 0; t < 40 && !mon.lines.some((l) => l.startsWith(`add table inet ${TRACE_TABLE}`)); t++) await sleep(25);
    let outcome = '';
    const attempts = req.attempts ?? 3;
    for (let i = 0; i < attempts; i++) {
      outcome = sendProbe(req.netns, { family: req.family, dst: req.dst, port: req.port, protocol: req.protocol, timeoutMs: 500 }).outcome;
      const deadline = Date.now() + 1500;
      for (;;) {
        const p = probePacket(splitPackets(mon.lines), req.protocol);
        if (p && (settled(judgePacket(p)) || Date.now() > deadline)) {
          // A little longer for the last lines of an unsettled trace.
          if (!settled(judgePacket(p))) await sleep(100);
          const final = probePacket(splitPackets(mon.lines), req.protocol) ?? p;
          const j = judgePacket(final);
          const verdict = verdictOf(j, req.scope);
          const answer: KernelAnswer = { ...base, chains: j.bases, probe: outcome, trace: final.lines };
          if (verdict) answer.verdict = verdict;
          if (j.droppedAt) answer.droppedAt = { table: 'inet weir', ...j.droppedAt };
          else if (j.otherDrop) answer.droppedAt = j.otherDrop;
          answer.detail = describe(j, verdict, req.scope);
          return answer;
        }
        if (Date.now() > deadline) break;
        await sleep(25);
      }
    }
    const nftErr = mon.lines.filter((l) => l.startsWith('# nft:')).join('; ');
    return { ...base, probe: outcome, detail: `no traced packet seen after ${attempts} probes (probe: ${outcome})${nftErr ? `; ${nftErr}` : ''}` };
  } finally {
    mon.stop();
    if (created || tableExists(nft)) {
      try {
        nft.runScript(`delete table inet ${TRACE_TABLE}`);
      } catch {
        // already gone
      }
    }
    nft.close();
  }
}

function describe(j: ReturnType<typeof judgePacket>, verdict: KernelVerdict | undefined, scope: 'both' | 'egress'): string {
  if (j.droppedAt) return `dropped in inet weir chain ${j.droppedAt.chain}: ${j.droppedAt.rule}`;
  if (j.otherDrop) return `dropped by ${j.otherDrop.table} chain ${j.otherDrop.chain} (not weir's policy): ${j.otherDrop.rule}`;
  // The policy base chains (pod_masquerade, the nat chain of the same table, says nothing about policy).
  const chains = Object.entries(j.bases)
    .filter(([c]) => c !== 'pod_masquerade')
    .map(([c, v]) => `${c}: ${v ?? 'undecided'}`)
    .join(', ');
  if (!j.weirSeen) return 'the probe passed no chain of inet weir (weir does not police this path, e.g. traffic to the node itself)';
  if (verdict === 'allow') {
    return scope === 'egress'
      ? `accepted by pod_egress here (${chains}); the destination runs on another node, so its ingress is judged there, not here`
      : `accepted by pod_egress and pod_ingress (${chains})`;
  }
  return `the trace ended undecided (${chains})`;
}
