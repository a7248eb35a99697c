// Forensics: what the kernels held when a connection the newest state
// forbids got through. A forbidden connection is only known as such once
// its candidate states settle, seconds later, when the tables have moved on;
// so every connection that the newest state forbids when its verdict
// arrives (most are excused later by the settle rule) gets a capture at
// once: the destination and source nodes' weir table, their conntrack
// entries of the flow, the destination's route to the address and every
// agent's last reported versions. The book names the capture of each
// forbidden connection; the others are deleted at the end of the run.
import fs from 'node:fs';
import path from 'node:path';
import { ipEndpoint, podEndpoint } from '../../src/policy/evaluator.ts';
import type { NodeInfo } from '../../src/policy/types.ts';
import { inNetns, run } from '../commands/common.ts';
import type { LabState, LabStateNode } from '../state.ts';
import type { EnforcementTracker } from './enforcement.ts';
import { EvaluatorCache, type ProbeResult, podWithIp } from './judge.ts';
import { KINDS, type Kind, type KindTimeline, type KObject, type Version } from './timeline.ts';

/** At most this many captures a run, one at a time: a capture lists two tables. */
const MAX_CAPTURES = 60;

export const probeKey = (p: ProbeResult): string => `${p.from}|${p.ip}|${p.port}|${p.start}`;

type PodLike = KObject & { spec?: { nodeName?: string } };

export class Forensics {
  readonly dir: string;
  /** Capture file by probe key. */
  readonly captures = new Map<string, string>();
  readonly #state: LabState;
  readonly #timelines: Record<Kind, KindTimeline>;
  readonly #tracker: EnforcementTracker;
  readonly #evaluators: EvaluatorCache;
  #busy = false;
  #taken = 0;

  constructor(state: LabState, timelines: Record<Kind, KindTimeline>, tracker: EnforcementTracker, nodes: readonly NodeInfo[], dir: string) {
    this.#state = state;
    this.#timelines = timelines;
    this.#tracker = tracker;
    this.#evaluators = new EvaluatorCache(nodes);
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Told of every probe as its verdict arrives. */
  onProbe(p: ProbeResult): void {
    if (!p.connected || this.#busy || this.#taken >= MAX_CAPTURES) return;
    const newest = {} as Record<Kind, Version>;
    for (const k of KINDS) {
      const v = this.#timelines[k].latest;
      if (!v) return;
      newest[k] = v;
    }
    const ev = this.#evaluators.get(newest);
    if (ev instanceof Error) return;
    const [ns, name] = p.from.split('/') as [string, string];
    try {
      if (ev.evaluate({ src: podEndpoint(ns, name), dst: ipEndpoint(p.ip), protocol: 'TCP', port: p.port }).allowed) return;
    } catch {
      return;
    }
    this.#busy = true;
    this.#taken++;
    void this.#capture(p, newest).finally(() => (this.#busy = false));
  }

  /** Deletes the captures of connections that turned out not to be forbidden. */
  prune(keep: ReadonlySet<string>): void {
    for (const [k, file] of this.captures) if (!keep.has(k)) fs.rmSync(file, { force: true });
    for (const k of [...this.captures.keys()]) if (!keep.has(k)) this.captures.delete(k);
  }

  async #capture(p: ProbeResult, newest: Record<Kind, Version>): Promise<void> {
    const at = Date.now();
    const holder = podWithIp(newest.pods, p.ip) as PodLike | undefined;
    const src = newest.pods.objects.get(p.from) as PodLike | undefined;
    const node = (n: string | undefined): LabStateNode | undefined => this.#state.nodes.find((x) => x.name === n);
    const dstNode = node(holder?.spec?.nodeName);
    const srcNode = node(src?.spec?.nodeName);
    const sections: string[] = [
      `probe ${JSON.stringify(p)}; captured ${at - (p.start + p.ms)} ms after its verdict`,
      `newest versions: ${KINDS.map((k) => `${k} v${newest[k].seq} (${newest[k].change})`).join('; ')}`,
      `agents' applied versions: ${JSON.stringify(Object.fromEntries(this.#tracker.applied))}`,
      `address held by ${holder ? `${holder.metadata?.namespace}/${holder.metadata?.name} on ${holder.spec?.nodeName}` : 'no pod'}; source on ${src?.spec?.nodeName ?? '?'}`,
    ];
    const sh = async (title: string, n: LabStateNode | undefined, argv: string[]): Promise<void> => {
      if (!n) return;
      const r = await run(inNetns(n.netns, argv), { timeoutMs: 10_000 });
      sections.push(`== ${n.name}: ${title} (exit ${r.code}, ${r.ms} ms)\n${r.stdout}${r.stderr}`);
    };
    const flow = ['conntrack', '-L', '-p', 'tcp', '--dst', p.ip, '--dport', String(p.port)];
    await Promise.all([
      sh('conntrack of the flow', dstNode, flow),
      sh('conntrack of the flow', srcNode === dstNode ? undefined : srcNode, flow),
      sh('route to the address', dstNode, ['ip', 'route', 'get', p.ip]),
    ]);
    await sh('weir table', dstNode, ['nft', '-a', 'list', 'table', 'inet', 'weir']);
    if (srcNode !== dstNode) await sh('weir table', srcNode, ['nft', '-a', 'list', 'table', 'inet', 'weir']);
    const file = path.join(this.dir, `${p.start}-${p.from.replace('/', '_')}-${p.ip}-${p.port}.txt`);
    fs.writeFileSync(file, `${sections.join('\n')}\n`);
    this.captures.set(probeKey(p), file);
  }
}
