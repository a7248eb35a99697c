// The built weirctl against a real node: weir-agent on a real kube-apiserver
// (the control plane's namespace plays node n1), pods wired by the real
// plugin (dist/bin/weir ADD) into namespaces made with `ip netns add` (so
// weirctl finds them under /var/run/netns), a NetworkPolicy, and
// dist/bin/weirctl run inside the node namespace with --socket, --data-dir
// and --cni-conf-dir pointing at the test's directories.
//
// Network safety: every address, link and sysctl touched lives in the
// namespaces this file creates (the node namespace of the fixture and the
// pod namespaces).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostVethName } from '../../src/plugin/names.ts';
import { eventually, WEIR_BIN, WEIRCTL_BIN as WEIRCTL } from '../helpers/agent.ts';
import { type AttachedPod, useAgentNode } from '../helpers/agent-node.ts';

const n = useAgentNode('weirctl', { internalIP: '172.31.9.1' });
const { fx, kubectl, apply, applied } = n;

const pods = new Map<string, AttachedPod>();
const ORPHAN = 'weir0123456789a';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: each command's JSON output has its own shape; the assertions read it field by field.
  json: any;
}

/** dist/bin/weirctl inside the node namespace, pointed at the test's agent and directories, its output parsed when it is JSON. */
function weirctl(args: string[]): Run {
  const r = n.weirctl(args);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** A pod in the API on n1, wired by the plugin into a fresh namespace, with the address the plugin gave it in its status. */
async function startPod(name: string, labels: Record<string, string>): Promise<void> {
  n.pod('shop', name, labels, { ports: [{ name: 'http', containerPort: 8080 }] });
  await applied('pods', `pod ${name}`);
  pods.set(name, n.attachPod('shop', name, `ctr-${name}-${process.pid}`));
}

beforeAll(async () => {
  if (!fs.existsSync(WEIRCTL)) throw new Error(`${WEIRCTL} is missing: run \`npm run build\``);
  n.namespace('shop');
  await n.start();
  await startPod('web', { app: 'web' });
  await startPod('client', { app: 'client' });
  apply({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'shop', name: 'web-from-client' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] },
  });
  await applied('policies', 'the policy');
  await applied('pods', "the pods' addresses");
}, 120_000);

afterAll(() => {
  fx.netns.run(['ip', 'link', 'del', ORPHAN]);
});

describe('weirctl on a node', () => {
  it('status -o json: the agent is ready, every API kind synced', () => {
    const r = weirctl(['status', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ready: true, healthy: true, node: 'n1', errors: { sync: null } });
    expect(r.json.api.map((k: { kind: string; synced: boolean }) => [k.kind, k.synced])).toEqual([
      ['pods', true],
      ['namespaces', true],
      ['policies', true],
      ['nodes', true],
      ['clusterpolicies', true],
    ]);
    // No CRD in this control plane: the status says why there are no ClusterNetworkPolicies.
    expect(r.json.clusterPolicyApi).toEqual({ available: false, reason: expect.stringMatching(/not installed/) });
    expect(weirctl(['status']).stdout).toMatch(/CNP:\s+not available: .*not installed/);
    expect(r.json.counts.rules).toBeGreaterThan(0);
    expect(r.json.lastSync.durationMs).toBeGreaterThan(0);
    const text = weirctl(['status']);
    expect(text.stdout).toMatch(/Health:\s+healthy, ready/);
  });

  it('an unreachable agent is exit 2 with a one-line message naming the socket', () => {
    const r = spawnSync('ip', ['netns', 'exec', fx.netns.name, WEIRCTL, '--socket=/nonexistent/agent.sock', 'status'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('/nonexistent/agent.sock');
    expect(r.stderr).toContain('--socket');
  });

  it('endpoints: the pods with their host veths and isolation', () => {
    const r = weirctl(['endpoints', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const web = r.json.endpoints.find((e: { name: string }) => e.name === 'web');
    const client = r.json.endpoints.find((e: { name: string }) => e.name === 'client');
    expect(web).toMatchObject({
      namespace: 'shop',
      ips: [pods.get('web')!.ip],
      containerID: pods.get('web')!.containerId,
      hostVeth: hostVethName(pods.get('web')!.containerId, 'eth0'),
      hostVethPresent: true,
      ingress: { isolated: true, policies: ['shop/web-from-client'] },
      egress: { isolated: false, policies: [] },
    });
    expect(client).toMatchObject({ hostVethPresent: true, ingress: { isolated: false }, egress: { isolated: false } });
    expect(weirctl(['endpoints']).stdout).toMatch(/shop\/web\s+10\.244\.1\.\d+\s+weir[0-9a-f]{11}\s+isolated\s+open\s+shop\/web-from-client/);
  });

  it('policy: explains the rule that lets client reach web', () => {
    const r = weirctl(['policy', 'shop/web', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.ingress).toEqual({
      isolated: true,
      policies: ['shop/web-from-client'],
      allowances: [{ policy: 'shop/web-from-client', rule: 0, peers: ['pods app=client in namespace shop'], ports: ['TCP 80'] }],
      summary: 'isolated: 1 rule allows',
      clusterPolicies: [],
    });
    expect(r.json.egress.summary).toBe('not isolated: all allowed');
    expect(weirctl(['policy', 'shop/client']).stdout).toContain('Ingress: not isolated: all allowed');
  });

  it('trace: deny on a port the policy does not open, allow on the one it does; the kernel agrees', () => {
    const deny = weirctl(['trace', '--from', 'shop/client', '--to', 'shop/web', '--port', '81', '-o', 'json']);
    expect(deny.code, deny.stderr).toBe(0);
    expect(deny.json.verdict).toBe('deny');
    expect(deny.json.kernel).toMatchObject({ verdict: 'deny', method: 'nftrace', scope: 'both' });
    expect(deny.json.kernel.droppedAt.chain).toMatch(/^prof_[0-9a-f]+_in$/);
    expect(deny.json.kernel.netns).toBe(pods.get('client')!.netns.path);
    expect(deny.json.agree).toBe(true);
    expect(deny.json.reasons.join('\n')).toContain('no rule allows it in shop/web-from-client');

    const allow = weirctl(['trace', '--from', 'shop/client', '--to', pods.get('web')!.ip, '--port', '80', '-o', 'json']);
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.json.verdict).toBe('allow');
    expect(allow.json.kernel).toMatchObject({ verdict: 'allow', method: 'nftrace', chains: { pod_egress: 'accept', pod_ingress: 'accept' } });
    expect(allow.json.agree).toBe(true);

    const udp = weirctl(['trace', '--from', 'shop/client', '--to', 'shop/web', '--port', '80', '--protocol', 'udp', '-o', 'json']);
    expect(udp.json).toMatchObject({ verdict: 'deny', kernel: { verdict: 'deny' }, agree: true });

    // The temporary table is gone.
    expect(fx.netns.run(['nft', 'list', 'table', 'inet', 'weirctl_trace']).code).not.toBe(0);

    // A source that is no pod of this node: the evaluator answers, the kernel cannot.
    const ext = weirctl(['trace', '--from', '198.51.100.7', '--to', 'shop/web', '--port', '80', '-o', 'json']);
    expect(ext.json).toMatchObject({ verdict: 'deny', kernel: { method: 'unavailable' }, agree: null });
    expect(ext.json.kernel.verdict).toBeUndefined();

    const text = weirctl(['trace', '--from', 'shop/client', '--to', 'shop/web', '--port', '81']);
    expect(text.stdout).toContain('Kernel (nftrace): DENIED');
    expect(text.stdout).toContain('Agreement: the kernel agrees with the reference evaluator');
    expect(text.stdout).toContain("method: one TCP probe from the pod's network namespace");
  });

  it('drops: the denied probe, resolved to the pod and its policy', async () => {
    const drop = await eventually('a drop of client -> web:81', () => {
      const r = weirctl(['drops', '-o', 'json']);
      return r.json?.drops?.find((d: { dport: number; srcPod?: string }) => d.dport === 81 && d.srcPod === 'shop/client');
    });
    expect(drop).toMatchObject({ direction: 'ingress', dstPod: 'shop/web', pod: 'shop/web', policies: ['shop/web-from-client'], protocol: 'TCP' });
    expect(weirctl(['drops', '--limit', '5']).stdout).toMatch(
      /ingress\s+shop\/client \(10\.244\.1\.\d+:\d+\)\s+shop\/web \(10\.244\.1\.\d+:81\)\s+TCP SYN\s+shop\/web\s+shop\/web-from-client/,
    );
  });

  it('ipam lists the allocations and finds planted leaks; gc repairs them and nothing else', async () => {
    // A record of a deleted pod: wired, then the pod goes from the API and its veth vanishes without a DEL.
    await startPod('ghost', { app: 'ghost' });
    const ghost = pods.get('ghost')!;
    kubectl(['-n', 'shop', 'delete', 'pod', 'ghost', '--grace-period=0', '--force']);
    await applied('pods', 'the deleted pod');
    fx.netns.sh(['ip', 'link', 'del', hostVethName(ghost.containerId, 'eth0')]);
    // A host veth of this network that no record owns.
    fx.netns.sh(['ip', 'link', 'add', ORPHAN, 'type', 'veth', 'peer', 'name', 'wctlpeer0']);
    fx.netns.sh(['ip', 'link', 'set', ORPHAN, 'alias', 'weir/weir/shop/orphan/ctr-orphan']);

    const r = weirctl(['ipam', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.ranges).toEqual([{ range: '10.244.1.0/24', size: 254, used: 3, free: 251 }]);
    const web = r.json.allocations.find((a: { pod?: string }) => a.pod === 'shop/web');
    expect(web).toMatchObject({ addresses: [pods.get('web')!.ip], containerID: pods.get('web')!.containerId, hostVethPresent: true, podExists: true });
    expect(r.json.leaks.records.map((a: { containerID: string }) => a.containerID)).toEqual([ghost.containerId]);
    expect(r.json.leaks.veths.map((v: { name: string }) => v.name)).toEqual([ORPHAN]);

    const gc = weirctl(['gc', '-o', 'json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.json.actions).toEqual([
      expect.objectContaining({ action: 'released', what: ghost.ip, pod: 'shop/ghost', containerID: ghost.containerId }),
      expect.objectContaining({ action: 'deleted-veth', what: ORPHAN }),
    ]);
    const after = weirctl(['ipam', '-o', 'json']);
    expect(after.json.leaks).toEqual({ records: [], veths: [] });
    expect(after.json.allocations.map((a: { pod?: string }) => a.pod).sort()).toEqual(['shop/client', 'shop/web']);
    expect(fx.netns.run(['ip', 'link', 'show', ORPHAN]).code).not.toBe(0);
    expect(weirctl(['gc']).stdout).toContain('Nothing to repair');
  });

  it('doctor passes, then fails naming ip_forward when forwarding is off', () => {
    const ok = weirctl(['doctor', '-o', 'json', `--cni-bin-dir=${path.dirname(WEIR_BIN)}`]);
    expect(
      ok.json?.checks?.filter((c: { ok: boolean }) => !c.ok),
      ok.stdout + ok.stderr,
    ).toEqual([]);
    expect(ok.code).toBe(0);
    expect(ok.json.ok).toBe(true);
    fx.netns.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    try {
      const bad = weirctl(['doctor', `--cni-bin-dir=${path.dirname(WEIR_BIN)}`]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/FAIL\s+net\.ipv4\.ip_forward/);
      expect(bad.stdout).toContain('fix: sysctl -w net.ipv4.ip_forward=1');
    } finally {
      fx.netns.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    }
    expect(fx.netns.sh(['sysctl', '-n', 'net.ipv4.ip_forward']).trim()).toBe('1');
  });
});
