// The fuzz corpus replayed on the real plugin: the in-process fuzzers
// (fuzz/cni-*.fuzz.ts) leave the kernel out, so here the built dist/bin/weir
// runs, in a throw-away node namespace, the corpus inputs whose ADD succeeds
// in-process (they reach the veth, addresses and routes) and a sample of
// those it refuses, each followed by the DEL a runtime sends. Each must
// answer as it did in-process (same exit, same CNI error code) and leave no
// veth, no route, no address file and no temp file behind. The corpus's
// CHECK inputs run on a real attachment, with their fuzzed prevResult.
//
// The config's dataDir is the test's, agentSocket is dropped, and a non-empty
// CNI_NETNS becomes the pod's namespace: a corpus input must not reach the
// machine's paths or namespaces (and CNI_PATH gets weir's folder in front,
// where a runtime found it). Runs as root (the kernel tier); run `npm run
// build` first.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertCniOutcome } from '../../fuzz/lib/cni-checks.ts';
import { fakePlugin } from '../../fuzz/lib/cni-fakes.ts';
import { type CniCase, envCase, stdinCase } from '../../fuzz/lib/cni-inputs.ts';
import { invoke } from '../../src/plugin/invoke.ts';
import { CNI_PATH, type CniNode, describeOutcome, useCniNodes, walk } from '../helpers/cni.ts';

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

/**
 * A corpus CHECK input on a real attachment: ADD with its config (without its
 * prevResult) for a fresh pod, then CHECK with the ADD's own result, which
 * must pass, and with the corpus's prevResult (the fuzz namespace made the
 * pod's, so that CHECK gets past the interface lookup to the kernel), which
 * must answer with a typed code. False when ADD refuses the config.
 */
function checkReplay(node: CniNode, name: string, stdin: string): boolean {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(stdin) as Record<string, unknown>;
  } catch {
    return false;
  }
  if (typeof doc !== 'object' || doc === null || typeof doc['prevResult'] !== 'object') return false;
  const { prevResult, ...conf } = doc;
  const pod = node.newPod();
  const what = `${name} (stdin ${stdin.slice(0, 300)})`;
  const add = node.invoke('ADD', confined(JSON.stringify(conf), node), pod);
  if (add.code === 0) {
    const result = add.json ?? {};
    const own = node.invoke('CHECK', confined(JSON.stringify({ ...conf, prevResult: result }), node), pod);
    if (result['cniVersion'] !== '0.3.0' && result['cniVersion'] !== '0.3.1')
      expect(own.code, `${what}: CHECK with the ADD result: ${describeOutcome(own)}`).toBe(0);
    const fuzzed = JSON.stringify(prevResult).replaceAll('"/var/run/netns/fuzz"', JSON.stringify(pod.ns.path));
    const check = node.invoke('CHECK', confined(JSON.stringify({ ...conf, prevResult: JSON.parse(fuzzed) }), node), pod);
    expect(check.code === 0 || check.code === 1, `${what}: CHECK ${describeOutcome(check)}`).toBe(true);
    assertCniOutcome({ code: check.code === 0 ? 0 : 1, stdout: check.stdout }, 'CHECK');
    expect(node.invoke('DEL', confined(JSON.stringify(conf), node), pod).code, `${what}: DEL`).toBe(0);
  }
  const left = walk(node.dataDir).filter((f) => net.isIP(path.basename(f)) !== 0 || path.basename(f).startsWith('.tmp-'));
  expect({ links: node.linkNames().filter((n) => n !== 'lo'), routes: node.weirRoutes(), files: left }, what).toEqual({ links: [], routes: [], files: [] });
  pod.ns.destroy();
  return add.code === 0;
}

describe('weir plugin: the fuzz corpus on the real executable', () => {
  it('cni-stdin CHECK inputs on a real attachment: CHECK with the ADD result passes, the fuzzed prevResult gets a typed answer', () => {
    const dir = path.join(CORPUS, 'cni-stdin');
    const node = nodes.node();
    let checked = 0;
    for (const name of fs.readdirSync(dir).sort()) {
      const c = stdinCase(fs.readFileSync(path.join(dir, name)));
      if (c?.env['CNI_COMMAND'] === 'CHECK' && checkReplay(node, name, c.stdin)) checked++;
    }
    expect(checked, 'corpus CHECK inputs whose config ADD accepts').toBeGreaterThan(0);
  }, 600_000);

  for (const target of ['cni-stdin', 'cni-env'] as const) {
    it(`${target}: each replayed ADD answers as in-process and its DEL leaves nothing`, async () => {
      const list = await replays(target);
      expect(list.filter((r) => r.expected === 0).length, 'corpus inputs whose ADD succeeds').toBeGreaterThan(0);
      const node = nodes.node();
      for (const r of list) replay(node, r);
    }, 600_000);
  }
});
