// The built weir plugin under load and under SIGKILL: many runtimes' worth of
// concurrent invocations against one node, and ADDs killed at random points.
// Invoked as a runtime does (test/helpers/cni.ts), inside a throw-away node
// namespace with a temp dataDir.
//
// Needs root, busybox and iproute2; run `npm run build` first.
import { describe, expect, it } from 'vitest';
import {
  type AttachedPod,
  describeOutcome,
  expectSuccess,
  gcNetworkList,
  hasLink,
  NOTHING_LEFT,
  ping,
  podAddresses,
  sleep,
  useCniNodes,
} from '../helpers/cni.ts';

const nodes = useCniNodes('stress');

const PODS = 100;
const KILL_ITERATIONS = 24;

describe('weir plugin under load', () => {
  it(`${PODS} concurrent ADDs give ${PODS} distinct addresses, all wired; ${PODS} concurrent DELs leave nothing`, async () => {
    const node = nodes.node();
    const conf = node.config();
    const pods = Array.from({ length: PODS }, () => node.newPod());

    // All at once, as a kubelet starting a node full of pods would.
    const adds = await Promise.all(pods.map((p) => node.invokeAsync('ADD', conf, p).done));
    for (const [i, o] of adds.entries()) expectSuccess(o, `ADD of pod ${i}`);
    const attached: AttachedPod[] = pods.map((p, i) => node.attached(p, expectSuccess(adds[i]!, `ADD of pod ${i}`)));

    const v4 = attached.map((a) => a.ipv4);
    const v6 = attached.map((a) => a.ipv6);
    expect(new Set(v4).size, 'distinct IPv4 addresses').toBe(PODS);
    expect(new Set(v6).size, 'distinct IPv6 addresses').toBe(PODS);
    expect(node.addressFiles().sort()).toEqual([...v4, ...v6].sort());
    expect(node.tempFiles()).toEqual([]);
    expect(
      node
        .linkNames()
        .filter((n) => n !== 'lo')
        .sort(),
    ).toEqual(attached.map((a) => a.hostVeth).sort());
    expect(node.weirRoutes()).toHaveLength(2 * PODS);
    for (const a of attached) expect(podAddresses(a.ns).sort(), `addresses of ${a.meta.name}`).toEqual([`${a.ipv4}/32`, `${a.ipv6}/128`]);

    // Every pod answers the node, over both families (one shell, not 200 spawns).
    const unreachable = node.ns.sh([
      'sh',
      '-c',
      `for ip in ${[...v4, ...v6].join(' ')}; do busybox ping -c 1 -W 2 "$ip" >/dev/null 2>&1 || echo "$ip"; done; true`,
    ]);
    expect(unreachable.trim().split('\n').filter(Boolean), 'pods the node cannot ping').toEqual([]);

    const dels = await Promise.all(attached.map((a) => node.invokeAsync('DEL', { ...conf, prevResult: a.result }, a).done));
    for (const [i, o] of dels.entries()) expectSuccess(o, `DEL of pod ${i}`);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    expect(node.linkNames()).toEqual(['lo']);
    expect(attached.filter((a) => hasLink(a.ns, 'eth0')).map((a) => a.meta.name)).toEqual([]);
  }, 240_000);

  it(`SIGKILL at a random point of ADD (${KILL_ITERATIONS} times): DEL or GC leaves nothing, the next ADD succeeds`, async () => {
    const node = nodes.node();
    const conf = node.config();

    // How long one ADD takes here, process start to exit.
    const probe = node.newPod({ tag: 'probe' });
    const timed = await node.invokeAsync('ADD', conf, probe).done;
    const duration = timed.ms;
    node.del(node.attached(probe, expectSuccess(timed, 'timing ADD')));
    probe.ns.destroy();

    const log: string[] = [];
    let killed = 0;
    for (let i = 0; i < KILL_ITERATIONS; i++) {
      const pod = node.newPod({ tag: 'kill' });
      const run = node.invokeAsync('ADD', conf, pod);
      const delay = Math.random() * duration;
      await sleep(delay);
      run.child.kill('SIGKILL');
      const o = await run.done;
      if (o.signal === 'SIGKILL') killed++;
      else expectSuccess(o, `ADD of iteration ${i} (not killed in time)`);

      // Then the runtime cleans up: DEL (no cached result: the ADD never
      // answered), or on some iterations a GC that names no attachment.
      const viaGc = i % 3 === 2;
      const what = `iteration ${i}: SIGKILL sent after ${delay.toFixed(1)} of ${duration.toFixed(1)} ms (${o.signal ? 'killed' : `finished first, exit ${o.code}`}), cleaned by ${viaGc ? 'GC' : 'DEL'}`;
      log.push(what);
      if (viaGc) {
        const gc = gcNetworkList(node.name, node.list(), []);
        expect(gc.ok, `${what}: ${gc.error}`).toBe(true);
      } else {
        const del = node.invoke('DEL', conf, pod);
        expect(del.code, `${what}: ${describeOutcome(del)}`).toBe(0);
      }
      expect(node.leftovers(), what).toEqual(NOTHING_LEFT);
      expect(hasLink(pod.ns, 'eth0'), `${what}: eth0 left in the pod`).toBe(false);

      // The node is still usable: a fresh pod is wired and reachable.
      const fresh = node.add(node.newPod({ tag: 'fresh' }), conf);
      expect(ping(node.ns, fresh.ipv4!), `${what}: fresh pod unreachable`).toBe(true);
      node.del(fresh);
      expect(node.leftovers(), `${what}, then a fresh ADD and DEL`).toEqual(NOTHING_LEFT);
      pod.ns.destroy();
      fresh.ns.destroy();
    }
    // Make sure the loop really killed ADDs in flight, not only finished ones.
    expect(killed, log.join('\n')).toBeGreaterThanOrEqual(KILL_ITERATIONS / 4);
  }, 180_000);
});
