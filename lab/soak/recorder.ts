// The soak's own view of the API: list + watch of pods, namespaces and
// NetworkPolicies, every change timestamped into the kinds' timelines
// (timeline.ts). It is independent of the agent's reflector on purpose: it
// is the reference the agent is judged against.
//
// It runs `kubectl get --raw <path>?watch=1…` (the pinned kubectl as
// cluster admin, in the cluster's namespace like every lab command):
// kubectl streams the API's watch body, one JSON event per line, to stdout.
// A 410 (an ERROR event in the stream, or the watch request's status) means
// the version is compacted away: relist, and count it (the etcd-compact
// fault's evidence). A watch that breaks otherwise (the API server stopped
// or restarted) resumes from the last version seen.
//
// Each line is timestamped as it leaves kubectl, by a small process of its
// own (STAMP_LINES), not when the soak's event loop gets to it: that loop
// also judges probes (up to JUDGE_BUDGET_MS at a time), and an agent
// applies a change some 20 ms after its own watch delivers it. A change
// dated late is missing from the candidate states of the probes in
// between, so a connection that an opening change (a pod relabelled into a
// policy's reach) allowed would be called forbidden. LAG_MS covers what is
// left: the API server's fan-out to two watchers and the scheduling of
// kubectl and the stamper.
import { type ChildProcess, spawn } from 'node:child_process';
import readline from 'node:readline';
import { kubectl, kubectlArgv, sleep, userEnv } from '../commands/common.ts';
import { defaultNode } from '../probe/process.ts';
import type { LabState } from '../state.ts';
import { KINDS, type Kind, KindTimeline, type KObject, type Version } from './timeline.ts';

const PATHS: Record<Kind, string> = {
  pods: '/api/v1/pods',
  namespaces: '/api/v1/namespaces',
  networkpolicies: '/apis/networking.k8s.io/v1/networkpolicies',
};

/** What the evaluator and the judge read of an object; the rest (managedFields, annotations) is dropped. */
export function slim(kind: Kind, o: KObject): KObject {
  const m = o.metadata ?? {};
  const metadata = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    labels: m.labels ?? {},
    ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
  };
  if (kind === 'namespaces') return { metadata };
  if (kind === 'networkpolicies') return { metadata, spec: o.spec };
  const spec = (o.spec ?? {}) as { nodeName?: string; hostNetwork?: boolean; containers?: { ports?: unknown }[] };
  const st = (o.status ?? {}) as Record<string, unknown>;
  return {
    metadata,
    spec: { nodeName: spec.nodeName, hostNetwork: spec.hostNetwork, containers: (spec.containers ?? []).map((c) => ({ ports: c.ports })) },
    status: { phase: st['phase'], podIP: st['podIP'], podIPs: st['podIPs'], hostIP: st['hostIP'], hostIPs: st['hostIPs'] },
  };
}

const EXPIRED = /\b410\b|Expired|too old resource version|Gone/;

/** Runs argv, writing each line of its stdout as `<ms since the epoch>\t<line>`; its stderr and exit code pass through. */
export const STAMP_LINES = String.raw`
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const [cmd, ...args] = process.argv.slice(1);
const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
readline.createInterface({ input: child.stdout }).on('line', (l) => process.stdout.write(Date.now() + '\t' + l + '\n'));
child.on('error', (e) => { process.stderr.write(e.message + '\n'); process.exit(127); });
child.on('close', (code) => process.exit(code ?? 1));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => child.kill(sig));
`;

/** A change may be in force this long before the soak's stamp of it (see the header). */
export const LAG_MS = 100;

/** A stamped line: its time and its text. */
export function unstamp(line: string): { at: number; text: string } | undefined {
  const tab = line.indexOf('\t');
  const at = Number(line.slice(0, tab));
  return tab > 0 && Number.isFinite(at) ? { at, text: line.slice(tab + 1) } : undefined;
}
/** A new watch replays what it missed in its first moments; after this long its events are live. */
export const CATCH_UP_MS = 3000;

type WatchEnd = 'expired' | 'broken' | 'stopped';

export class Recorder {
  readonly timelines: Record<Kind, KindTimeline> = {
    pods: new KindTimeline('pods'),
    namespaces: new KindTimeline('namespaces'),
    networkpolicies: new KindTimeline('networkpolicies'),
  };
  /** 410s seen (watch status or stream ERROR), per kind. */
  readonly expired: Record<Kind, number> = { pods: 0, namespaces: 0, networkpolicies: 0 };
  readonly relists: Record<Kind, number> = { pods: 0, namespaces: 0, networkpolicies: 0 };
  /** Per kind, when its watch went down, while what happened since is not all received. */
  readonly #gapFrom: Partial<Record<Kind, number>> = {};
  /** Per kind, when the watch running now started (undefined while none runs). */
  readonly #watchStart: Partial<Record<Kind, number>> = {};
  #children = new Set<ChildProcess>();
  #stopped = false;
  #loops: Promise<void>[] = [];
  readonly #state: LabState;
  readonly #onVersion: (kind: Kind, v: Version) => void;

  constructor(state: LabState, onVersion: (kind: Kind, v: Version) => void = () => {}) {
    this.#state = state;
    this.#onVersion = onVersion;
  }

  /** Lists every kind (the timelines' first versions), then watches them until stop(). */
  async start(): Promise<void> {
    const rvs = await Promise.all(
      KINDS.map(async (k) => {
        const l = await this.#list(k);
        this.#onVersion(k, this.timelines[k].initial(Date.now(), l.items, l.rv));
        return l.rv;
      }),
    );
    this.#loops = KINDS.map((k, i) => this.#loop(k, rvs[i] as string));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#children) c.kill('SIGTERM');
    await Promise.all(this.#loops);
  }

  /**
   * Until when the timelines hold every change: now while every watch is
   * live, else the instant the first one still catching up went down. A
   * probe after it cannot be judged yet.
   */
  knownUntil(now = Date.now()): number {
    let until = now;
    for (const k of KINDS) {
      const gap = this.#gapFrom[k];
      if (gap === undefined) continue;
      const started = this.#watchStart[k];
      if (started !== undefined && now - started >= CATCH_UP_MS) delete this.#gapFrom[k];
      else until = Math.min(until, gap);
    }
    return until;
  }

  async #list(kind: Kind): Promise<{ items: KObject[]; rv: string }> {
    for (let attempt = 0; ; attempt++) {
      const r = await kubectl(this.#state, ['get', '--raw', PATHS[kind]], { timeoutMs: 30_000 });
      if (r.code === 0) {
        const list = JSON.parse(r.stdout) as { items?: KObject[]; metadata?: { resourceVersion?: string } };
        return { items: (list.items ?? []).map((o) => slim(kind, o)), rv: list.metadata?.resourceVersion ?? '' };
      }
      if (this.#stopped) throw new Error('stopped');
      // The API is down (a fault): try again, without hammering it.
      await sleep(Math.min(5000, 500 * (attempt + 1)));
    }
  }

  async #loop(kind: Kind, rv0: string): Promise<void> {
    let rv = rv0;
    while (!this.#stopped) {
      if (!rv) {
        try {
          const l = await this.#list(kind);
          this.relists[kind]++;
          const v = this.timelines[kind].relist(Date.now(), l.items, l.rv, this.#gapFrom[kind]);
          if (v) this.#onVersion(kind, v);
          rv = l.rv;
        } catch {
          return;
        }
      }
      const t0 = Date.now();
      this.#watchStart[kind] = t0;
      const r = await this.#watch(kind, rv, (next) => (rv = next));
      delete this.#watchStart[kind];
      // Changes from now until the next watch has caught up may reach the soak late.
      if (r !== 'stopped' && this.#gapFrom[kind] === undefined) this.#gapFrom[kind] = Date.now();
      if (r === 'expired') {
        this.expired[kind]++;
        rv = '';
      } else if (r === 'broken' && Date.now() - t0 < 1000) await sleep(1000);
    }
  }

  /** One watch request; resolves how it ended. `setRv` gets each newer version seen (events, bookmarks). */
  #watch(kind: Kind, rv: string, setRv: (rv: string) => void): Promise<WatchEnd> {
    // The server ends a watch after timeoutSeconds; a fresh one follows from the last version.
    const url = `${PATHS[kind]}?watch=1&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=${240 + Math.floor(Math.random() * 60)}`;
    const argv = kubectlArgv(this.#state, ['get', '--raw', url]);
    const child = spawn(defaultNode(), ['-e', STAMP_LINES, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: userEnv() });
    this.#children.add(child);
    let expired = false;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    readline.createInterface({ input: child.stdout }).on('line', (stamped) => {
      const line = unstamp(stamped);
      if (!line) return;
      let ev: { type?: string; object?: KObject & { code?: number } };
      try {
        ev = JSON.parse(line.text);
      } catch {
        return;
      }
      const obj = ev.object ?? {};
      if (ev.type === 'ERROR') {
        if (obj.code === 410) expired = true;
        return;
      }
      if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') {
        const at = line.at;
        const gap = this.#gapFrom[kind];
        const caughtUp = gap === undefined || at - (this.#watchStart[kind] ?? 0) >= CATCH_UP_MS;
        const v = this.timelines[kind].event(at, ev.type, slim(kind, obj), caughtUp ? at - LAG_MS : gap);
        if (v) this.#onVersion(kind, v);
      }
      if (obj.metadata?.resourceVersion) setRv(obj.metadata.resourceVersion);
    });
    return new Promise((resolve) =>
      child.once('close', () => {
        this.#children.delete(child);
        if (this.#stopped) resolve('stopped');
        else resolve(expired || EXPIRED.test(stderr) ? 'expired' : 'broken');
      }),
    );
  }
}
