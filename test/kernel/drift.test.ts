// Kernel = applied, against the real kernel: the table is edited behind the
// engine's back with the nft binary (an element deleted, a policy's chain
// flushed, the whole table deleted); the agent's KernelVerifier, over the
// same sources the agent gives it, finds each edit and repairs it with one
// full replacement, while a prober in pod x/a keeps connecting to x/b on an
// allowed port (80) and a forbidden one (81). Needs root and dist/bin/weir.
//
// What "no window" means here, per edit:
//   - an element deleted from a peer set, a policy chain flushed: those edits
//     close (weir's chains deny unless a rule accepts), so the forbidden port
//     must never answer, before, during or after the repair, and the allowed
//     one answers again once repaired;
//   - the table deleted: nothing hooks forward any more, so everything passes
//     until the repair (nftables has nothing that outlives its table). The
//     cheap check (generation + table identity, every tick) finds it at the
//     next tick; the replacement itself is one transaction, so no forbidden
//     connection may succeed once it is in, and the test reports the window.
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultNode } from '../../lab/probe/process.ts';
import { type CheckResult, KernelVerifier } from '../../src/agent/kernel-verifier.ts';
import { isNftNotFound } from '../../src/nft/errors.ts';
import type { NetworkPolicy } from '../../src/policy/types.ts';
import { type NodePod, usePolicyNode } from '../helpers/policy-node.ts';

const fx = usePolicyNode({
  prefix: 'drift',
  namespaces: { x: { ns: 'x' } },
  pods: [
    { namespace: 'x', name: 'a', labels: { pod: 'a' } },
    { namespace: 'x', name: 'b', labels: { pod: 'b' } },
  ],
});

const allowAto80: NetworkPolicy = {
  metadata: { namespace: 'x', name: 'b-from-a' },
  spec: {
    podSelector: { matchLabels: { pod: 'b' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ protocol: 'TCP', port: 80 }] }],
  },
};

/** TCP connects from `from` to `to` on both ports every 10 ms; each success logged with its port and time. */
function prober(from: NodePod, to: NodePod): { child: ChildProcess; ok: Array<{ port: number; at: number }>; stop(): void } {
  const script = `
    const net = require('node:net');
    const once = (port) => {
      const s = net.connect({ host: ${JSON.stringify(to.ip)}, port });
      s.setTimeout(200, () => s.destroy());
      s.on('connect', () => { console.log(port + ' ' + Date.now()); s.destroy(); });
      s.on('error', () => {});
    };
    setInterval(() => { once(80); once(81); }, 10);`;
  const child = spawn('nsenter', [`--net=${from.netns.path}`, '--', defaultNode(), '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const ok: Array<{ port: number; at: number }> = [];
  let buf = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      const [port, at] = l.split(' ').map(Number);
      ok.push({ port: port as number, at: at as number });
    }
  });
  return { child, ok, stop: () => child.kill('SIGKILL') };
}

describe('drift of the kernel table is found and repaired', () => {
  let verifier: KernelVerifier;
  const results: CheckResult[] = [];
  let repairedAt = 0;

  beforeAll(() => {
    const node = fx.node;
    node.apply([allowAto80]);
    verifier = new KernelVerifier(
      {
        source: {
          list: () => {
            try {
              return node.nft.list('inet', 'weir', { stateless: true });
            } catch (e) {
              if (isNftNotFound(e)) return undefined;
              throw e;
            }
          },
          generation: () => node.elements.generation(),
          tableInfo: () => node.elements.tableInfo('inet', 'weir'),
        },
        applied: () => node.engine.applied,
        repair: () => {
          node.engine.invalidate();
          node.apply(node.policies);
          repairedAt = Date.now();
          return true;
        },
        onResult: (r) => results.push(r),
      },
      { tickMs: 50, minFullMs: 300 },
    );
    // Trusted from a clean full check, as the agent starts.
    expect(verifier.check({ repair: false })).toMatchObject({ clean: true });
    verifier.start();
  });

  afterAll(() => verifier?.stop());

  /** Runs `edit` with the prober going; returns the prober's successes, after the verifier repaired and port 80 answers again. */
  async function edited(edit: string[], reason: string): Promise<{ ok: Array<{ port: number; at: number }>; editAt: number; result: CheckResult }> {
    const node = fx.node;
    const p = prober(node.pod('x/a'), node.pod('x/b'));
    try {
      await sleep(300);
      expect(
        p.ok.some((x) => x.port === 80),
        'x/a reaches x/b:80 before the edit',
      ).toBe(true);
      const before = results.length;
      repairedAt = 0;
      const editAt = Date.now();
      node.node.sh(['nft', ...edit]);
      let result: CheckResult | undefined;
      for (let i = 0; i < 200 && !result; i++) {
        await sleep(25);
        result = results.slice(before).find((r) => r.repaired);
      }
      expect(result, `no repair after nft ${edit.join(' ')}`).toBeDefined();
      const r = result as CheckResult;
      expect(r.drift.counts[reason as keyof typeof r.drift.counts], JSON.stringify(r.drift)).toBeGreaterThan(0);
      expect(r.afterRepair?.clean, JSON.stringify(r.afterRepair)).toBe(true);
      const back = Date.now();
      await sleep(300);
      expect(
        p.ok.some((x) => x.port === 80 && x.at > back),
        'x/a reaches x/b:80 after the repair',
      ).toBe(true);
      return { ok: p.ok, editAt, result: r };
    } finally {
      p.stop();
    }
  }

  it('an element deleted from a peer set: closes, found by the next full check, repaired; 81 never answers', async () => {
    const node = fx.node;
    const a = node.pod('x/a').ip;
    const set = [...(node.engine.applied?.sets.values() ?? [])].find((s) => s.def.comment === 'peer pods' && s.elements.has(a));
    expect(set, 'a peer set holding x/a').toBeDefined();
    const { ok } = await edited(['delete', 'element', 'inet', 'weir', set?.def.name as string, `{ ${a} }`], 'element-missing');
    expect(ok.filter((x) => x.port === 81)).toEqual([]);
  });

  it('a policy chain flushed: closes, found and repaired; 81 never answers', async () => {
    const node = fx.node;
    // The policy's ingress chain: its accept rules go, so x/b's profile drops everything.
    const chain = `${node.lastReport?.result.policyChains.get('x/b-from-a')}_in`;
    expect(node.engine.applied?.chains.has(chain), chain).toBe(true);
    const { ok } = await edited(['flush', 'chain', 'inet', 'weir', chain], 'chain-changed');
    expect(ok.filter((x) => x.port === 81)).toEqual([]);
  });

  it('the table deleted: found by the cheap check at the next tick and replaced in one transaction; 81 answers only until then', async () => {
    const { ok, editAt, result } = await edited(['delete', 'table', 'inet', 'weir'], 'table-missing');
    expect(result.kind).toBe('cheap');
    const open = ok.filter((x) => x.port === 81);
    console.log(`table deleted: repaired ${repairedAt - editAt} ms later; ${open.length} connection(s) to the forbidden port in that window`);
    expect(repairedAt - editAt).toBeLessThan(1000);
    expect(open.filter((x) => x.at > repairedAt)).toEqual([]);
  });
});
