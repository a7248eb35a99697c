// The cloud metadata guard (src/policy/metadata-guard.ts) enforced by the real
// kernel, against the reference evaluator. Needs root and the built plugin
// (dist/bin/weir).
//
// The node namespace of test/helpers/policy-node.ts gets the metadata
// address on its loopback (as GKE's metadata server answers on the node
// itself; never on the machine's real interfaces) and a probe server
// answering on it. Pods reach it through their default route, so
// their packets meet the node's prerouting hook (the guard), then the input
// hook. Probed over TCP from an ordinary pod (dropped), from
// pods exempt by their own label and by their namespace's, from a pod a
// NetworkPolicy names the address for (exactly, and with a wider CIDR that
// does not count), and with the guard off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProberProcess, type ServerProcess, spawnServer } from '../../../lab/probe/process.ts';
import { ipEndpoint, PolicyEvaluator, podEndpoint } from '../../../src/policy/evaluator.ts';
import { METADATA_ADDRESSES } from '../../../src/policy/metadata-guard.ts';
import type { NetworkPolicy } from '../../../src/policy/types.ts';
import { POD_CIDR, usePolicyNode } from '../../helpers/policy-node.ts';

const METADATA = METADATA_ADDRESSES[4];
const OPT_IN = { 'weir.dev/metadata-access': 'true' };
const fx = usePolicyNode({
  prefix: 'polmd',
  namespaces: { x: { ns: 'x' }, y: { ns: 'y' } },
  pods: [
    { namespace: 'x', name: 'plain', labels: { pod: 'plain' } },
    { namespace: 'x', name: 'labelled', labels: { pod: 'labelled', ...OPT_IN } },
    { namespace: 'y', name: 'any', labels: { pod: 'any' } },
  ],
});

let server: ServerProcess | undefined;
beforeAll(async () => {
  const node = fx.node.node;
  node.sh(['ip', 'addr', 'add', `${METADATA}/32`, 'dev', 'lo']);
  server = await spawnServer({ netnsPath: node.path, name: 'metadata', tcp: [80] });
}, 60_000);
afterAll(() => server?.stop());

// TCP only: the probe server's UDP socket is bound to every address and
// answers from the address the route to the pod prefers, not from the
// metadata address, so a UDP probe never sees its answer whatever the guard
// says. The guard itself does not look at the protocol.
const PROTOCOLS = ['TCP'] as const;

/** Whether each pod reaches the metadata server (by protocol), from the kernel and from the evaluator. */
async function reach(): Promise<{ kernel: Record<string, boolean>; evaluator: Record<string, boolean> }> {
  const ev = new PolicyEvaluator(fx.node.state());
  const kernel: Record<string, boolean> = {};
  const evaluator: Record<string, boolean> = {};
  for (const p of fx.node.pods) {
    // Conntrack entries of earlier probes would let a UDP probe that reuses a source port ride them.
    fx.node.conntrack().deleteWhere((e) => e.orig.dst === METADATA);
    const results = await runProberProcess(
      p.netns.path,
      PROTOCOLS.map((protocol) => ({ ip: METADATA, port: 80, protocol })),
      1000,
    );
    for (const r of results) {
      kernel[`${p.id} ${r.protocol}`] = r.connected && r.name === 'metadata';
      evaluator[`${p.id} ${r.protocol}`] = ev.evaluate({
        src: podEndpoint(p.namespace, p.name),
        dst: ipEndpoint(METADATA),
        protocol: r.protocol,
        port: 80,
      }).allowed;
    }
  }
  return { kernel, evaluator };
}

const both = (ids: Record<string, boolean>): Record<string, boolean> =>
  Object.fromEntries(Object.entries(ids).flatMap(([id, v]) => PROTOCOLS.map((p) => [`${id} ${p}`, v])));

const naming = (cidr: string): NetworkPolicy => ({
  metadata: { namespace: 'x', name: 'metadata' },
  spec: {
    podSelector: { matchLabels: { pod: 'plain' } },
    policyTypes: ['Egress'],
    egress: [
      {
        to: [{ ipBlock: { cidr } }],
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 80, protocol: 'UDP' },
        ],
      },
    ],
  },
});

describe('the metadata guard in the kernel', () => {
  it('an ordinary pod is dropped and logged as the guard; a pod with the opt-in label reaches the server', async () => {
    fx.node.apply([]);
    const r = await reach();
    expect(r.kernel).toEqual(both({ 'x/plain': false, 'x/labelled': true, 'y/any': false }));
    expect(r.kernel).toEqual(r.evaluator);
    expect(fx.node.table()).toMatch(/log prefix "weir deny eg metadata-guard: "/);
    expect(fx.node.table()).toMatch(/chain metadata_deny[\s\S]*?counter packets [1-9]/);
  }, 60_000);

  it("a namespace's opt-in label exempts its pods", async () => {
    fx.node.apply([], { y: { ns: 'y', ...OPT_IN } });
    const r = await reach();
    expect(r.kernel).toEqual(both({ 'x/plain': false, 'x/labelled': true, 'y/any': true }));
    expect(r.kernel).toEqual(r.evaluator);
    fx.node.apply([], { y: { ns: 'y' } });
  }, 60_000);

  it('a NetworkPolicy naming the address exempts the pods it selects; a wider CIDR does not', async () => {
    fx.node.apply([naming(`${METADATA}/32`)]);
    let r = await reach();
    expect(r.kernel).toEqual(both({ 'x/plain': true, 'x/labelled': true, 'y/any': false }));
    expect(r.kernel).toEqual(r.evaluator);
    fx.node.apply([naming('169.254.0.0/16')]);
    r = await reach();
    expect(r.kernel).toEqual(both({ 'x/plain': false, 'x/labelled': true, 'y/any': false }));
    expect(r.kernel).toEqual(r.evaluator);
  }, 60_000);

  it('off: every pod reaches it', async () => {
    fx.node.apply([]);
    fx.node.engine.sync(fx.node.state(), { options: { guardCIDRs: [POD_CIDR], metadataGuard: false } });
    const r = await reach();
    expect(r.kernel).toEqual(both({ 'x/plain': true, 'x/labelled': true, 'y/any': true }));
    expect(fx.node.table()).not.toMatch(/metadata_guard/);
    fx.node.apply([]);
    expect((await reach()).kernel['x/plain TCP']).toBe(false);
  }, 60_000);
});
