// The fuzz corpus replayed on the real plugin: the in-process fuzzers
// (fuzz/cni-*.fuzz.ts) leave the kernel out, so here the built dist/bin/weir
// runs, in a throw-away node namespace, the corpus inputs whose ADD succeeds
// in-process (they reach the veth, addresses and routes) and a sample of
// those it refuses, each followed by the DEL a runtime sends. Each must
// answer as it did in-process (same exit, same CNI error code) and leave no
// veth, no route, no address file and no temp file behind.
//
// The config's dataDir is the test's, agentSocket is dropped, and a non-empty
// CNI_NETNS becomes the pod's namespace: a corpus input must not reach the
// machine's paths or namespaces (and CNI_PATH gets weir's folder in front,
// where a runtime found it). Needs root; run `npm run build` first.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertCniOutcome } from '../../fuzz/lib/cni-checks.ts';
import { fakePlugin } from '../../fuzz/lib/cni-fakes.ts';
import { type CniCase, envCase, stdinCase } from '../../fuzz/lib/cni-inputs.ts';
import { invoke } from '../../src/plugin/invoke.ts';
import { CNI_PATH, type CniNode, describeOutcome, useCniNodes, walk } from '../helpers/cni.ts';

const isRoot = process.getuid?.() === 0;
const nodes = useCniNodes('fuzzcorp');
const CORPUS = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fuzz/corpus');
/**
 * Per target: every accepted ADD up to this many (all of them with
 * WEIR_FUZZ_REPLAY_ALL=1), and this many refused ones with distinct codes.
 */
const MAX_ACCEPTED = process.env['WEIR_FUZZ_REPLAY_ALL'] === '1' ? Infinity : 25;
const MAX_REFUSED = 8;

interface Replay {
  name: string;
  c: CniCase;
  /** The in-process outcome: 0, or the CNI error code. */
  expected: number;
}

function inProcess(c: CniCase): Promise<number> {
  return invoke(c.env, c.stdin, fakePlugin().verbs).then((o) => (o.code === 0 ? 0 : (JSON.parse(o.stdout) as { code: number }).code));
}

async function replays(target: 'cni-stdin' | 'cni-env'): Promise<Replay[]> {
  const dir = path.join(CORPUS, target);
  const accepted: Replay[] = [];
  const refused = new Map<number, Replay>();
  for (const name of fs.readdirSync(dir).sort()) {
    const data = fs.readFileSync(path.join(dir, name));
    const c = target === 'cni-stdin' ? stdinCase(data) : envCase(data);
    if (c?.env['CNI_COMMAND'] !== 'ADD') continue;
    const expected = await inProcess(c);
    if (expected === 0 && accepted.length < MAX_ACCEPTED) accepted.push({ name, c, expected });
    if (expected !== 0 && refused.size < MAX_REFUSED && !refused.has(expected)) refused.set(expected, { name, c, expected });
  }
  return [...accepted, ...refused.values()];
}

/** The stdin with the node's dataDir and no agent; bytes that are no JSON object go as they are. */
function confined(stdin: string, node: CniNode): string {
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch {
    return stdin;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return stdin;
  const { agentSocket: _, ...rest } = doc as Record<string, unknown>;
  return JSON.stringify({ ...rest, dataDir: node.dataDir });
}

function replay(node: CniNode, r: Replay): void {
  const pod = node.newPod();
  const env = r.c.env;
  const over = {
    containerId: env['CNI_CONTAINERID'] ?? '',
    ifname: env['CNI_IFNAME'] ?? '',
    args: env['CNI_ARGS'] ?? '',
    // The helper finds the plugin through CNI_PATH: weir's folder comes first (weir runs nothing from it).
    ...(env['CNI_PATH'] === undefined ? {} : { cniPath: `${CNI_PATH}:${env['CNI_PATH']}` }),
    netns: env['CNI_NETNS'] ? pod.ns.path : (env['CNI_NETNS'] ?? ''),
    unset: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'].filter((k) => env[k] === undefined),
  };
  const stdin = confined(r.c.stdin, node);
  const what = `${r.name} (env ${JSON.stringify(env)}, stdin ${JSON.stringify(stdin).slice(0, 300)})`;
  const add = node.invoke('ADD', stdin, undefined, over);
  expect(add.code === 0 || add.code === 1, `${what}: ADD ${describeOutcome(add)}`).toBe(true);
  assertCniOutcome({ code: add.code === 0 ? 0 : 1, stdout: add.stdout }, 'ADD');
  expect(add.code === 0 ? 0 : add.json?.code, `${what}: ADD ${describeOutcome(add)}`).toBe(r.expected);
  const del = node.invoke('DEL', stdin, undefined, over);
  if (r.expected === 0) expect(del.code, `${what}: DEL ${describeOutcome(del)}`).toBe(0);
  const left = walk(node.dataDir).filter((f) => net.isIP(path.basename(f)) !== 0 || path.basename(f).startsWith('.tmp-'));
  expect({ links: node.linkNames().filter((n) => n !== 'lo'), routes: node.weirRoutes(), files: left }, what).toEqual({ links: [], routes: [], files: [] });
  pod.ns.destroy();
}

describe.skipIf(!isRoot)('weir plugin: the fuzz corpus on the real executable', () => {
  for (const target of ['cni-stdin', 'cni-env'] as const) {
    it(`${target}: each replayed ADD answers as in-process and its DEL leaves nothing`, async () => {
      const list = await replays(target);
      expect(list.filter((r) => r.expected === 0).length, 'corpus inputs whose ADD succeeds').toBeGreaterThan(0);
      const node = nodes.node();
      for (const r of list) replay(node, r);
    }, 600_000);
  }
});
