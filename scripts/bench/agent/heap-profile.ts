// Summary of V8's sampling heap profile (node --heap-prof, written when the
// agent exits) for scripts/bench-agent --heap-profile: the sampled objects
// still alive at that moment, attributed to the call stacks that allocated
// them. Self size per allocation site says which line holds the memory;
// inclusive size per function groups a whole path (e.g. everything allocated
// under the compiler). Sampling: sizes are estimates, good to a few percent
// at the interval used.
import fs from 'node:fs';
import path from 'node:path';
import { mib } from '../lib/format.ts';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Markdown lines: the live heap's top allocation sites (self) and functions (inclusive). */
export function heapSummary(dir: string, top = 15): string[] {
  const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.heapprofile')) : undefined;
  if (!file) return ['(no heap profile was written: the agent did not exit normally)'];
  const head = (JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { head: HeapNode }).head;
  const site = (n: HeapNode): string =>
    `${n.callFrame.functionName || '(anonymous)'}${n.callFrame.url ? ` ${path.basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : ''}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  // Iterative walk; each function counted once per stack (recursion).
  const walk = (root: HeapNode): void => {
    const stack: Array<{ n: HeapNode; seen: Set<string>; sum?: number }> = [{ n: root, seen: new Set() }];
    const sums = new Map<HeapNode, number>();
    const order: Array<{ n: HeapNode; seen: Set<string> }> = [];
    while (stack.length) {
      const e = stack.pop() as { n: HeapNode; seen: Set<string> };
      order.push(e);
      const k = site(e.n);
      const seen = new Set(e.seen);
      seen.add(k);
      for (const c of e.n.children) stack.push({ n: c, seen });
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const { n, seen } = order[i] as { n: HeapNode; seen: Set<string> };
      const sub = n.selfSize + n.children.reduce((a, c) => a + (sums.get(c) ?? 0), 0);
      sums.set(n, sub);
      total += n.selfSize;
      const k = site(n);
      self.set(k, (self.get(k) ?? 0) + n.selfSize);
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + sub);
    }
  };
  walk(head);
  const share = (b: number): string => `${((100 * b) / total).toFixed(1)}%`;
  const out = [
    `Agent live heap at exit (V8 sampling heap profiler, node --heap-prof): ${mib(total)} sampled live.`,
    '',
    '| allocation site (self) | live | share |',
    '|---|---:|---:|',
  ];
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| \`${k}\` | ${mib(v)} | ${share(v)} |`);
  out.push('', '| function (inclusive: allocated under it) | live | share |', '|---|---:|---:|');
  const named = [...incl.entries()].filter(
    ([k]) => !k.startsWith('(root)') && !k.startsWith('(anonymous)') && !/^(processTicksAndRejections|runMicrotasks|emit|listOnTimeout|processTimers) /.test(k),
  );
  for (const [k, v] of named.sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| \`${k}\` | ${mib(v)} | ${share(v)} |`);
  return out;
}
