// Summary of V8's CPU profile (node --cpu-prof, written when the agent
// exits) for scripts/bench-agent --profile: over a window of the run (from
// start to ready, or the changes), the busy time by part of the agent's work
// (inclusive) and the functions with the most self time.
import fs from 'node:fs';
import path from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The agent's parts, by the frames that stand for them (a leading indent: part of the row above). */
const PARTS: Array<[string, (k: string) => boolean]> = [
  ['Reconciler.syncNow (one sync)', (k) => k.startsWith('syncNow reconciler.ts')],
  ['  ClusterCache.snapshot', (k) => k.startsWith('snapshot cache.ts')],
  ['  compilePolicies', (k) => k.startsWith('compilePolicies compile.ts')],
  ['  diffTransaction', (k) => k.startsWith('diffTransaction ruleset.ts')],
  ['  nftables transaction (LibNftables.run)', (k) => /^run libnftables\.ts/.test(k)],
  ['  routes (reconcileNodeRoutes)', (k) => k.startsWith('reconcileNodeRoutes routes.ts')],
  ['  CNI config (writeCniConfig)', (k) => k.startsWith('writeCniConfig ')],
  ['  conntrack purge (#purge)', (k) => k.startsWith('#purge reconciler.ts')],
  ['    of which PolicyEvaluator (connectionJudge)', (k) => k.startsWith('connectionJudge reconciler.ts')],
  ['  metrics (observeSync)', (k) => k.startsWith('observeSync agent-metrics.ts')],
  ['watch events (Reflector event handling, incl. slimPod)', (k) => k.startsWith('event run.ts') || k.startsWith('apply cache.ts')],
  [
    'status API (the benchmark polling /status, /metrics)',
    (k) => k.startsWith('status status-api.ts') || k.startsWith('metrics registry.js') || k.startsWith('getMetricsAsString registry.js'),
  ],
  ['(garbage collector)', (k) => k === '(garbage collector)'],
];

/** The profile's samples within `window` (µs, the monotonic clock), as Markdown lines. */
export function profileSummary(dir: string, window: [number, number], what: string): string[] {
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return ['(no CPU profile was written)'];
  const p = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (id: number): string => {
    const cf = byId.get(id)?.callFrame;
    if (!cf) return '?';
    const file = cf.url ? ` ${path.basename(cf.url)}:${cf.lineNumber + 1}` : '';
    return `${cf.functionName || '(anonymous)'}${file}`;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < window[0] || t > window[1]) continue;
    const id = p.samples[i] as number;
    const k = key(id);
    if (k === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const kk = key(n);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  }
  const share = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`;
  const out = [
    `Agent CPU profile (from source under --cpu-prof) ${what}: ${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle; shares of busy time.`,
    '',
  ];
  out.push('| part | inclusive |', '|---|---:|');
  for (const [label, match] of PARTS) {
    let us = 0;
    for (const [k, v] of incl) if (match(k)) us = Math.max(us, v);
    out.push(`| ${label.replace(/^ +/, (s) => '&nbsp;'.repeat(s.length))} | ${share(us)} |`);
  }
  out.push('', '| top self time | share |', '|---|---:|');
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) out.push(`| \`${k}\` | ${share(v)} |`);
  return out;
}
