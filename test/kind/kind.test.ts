// The kind tier: weir on a real kind cluster (real kubelets and containerd,
// podman inside a network namespace), checked the way its users check it:
//
//   - scripts/e2e-kind.sh, the curl e2e a kind user runs, passes;
//   - the upstream NetworkPolicy suite's CI subset (scripts/conformance netpol
//     --subset ci) passes;
//   - scripts/kind-down.sh leaves the machine as it found it: no namespace,
//     no podman container or network, no mount, no node cgroup, no process.
//
// It uses the lab's cluster (scripts/lab up: reused when it is up, as a user
// left it) and takes it down at the end. Needs root.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kindPaths } from '../../lab/kind.ts';
import { DOWN_TIMEOUT_MS, labOk, REPO, script, UP_TIMEOUT_MS, upDefaultLab } from '../helpers/lab.ts';

const KIND = kindPaths();

const lastLine = (s: string): string => s.trim().split('\n').at(-1) ?? '';

/** What a kind cluster on podman leaves on the machine while it runs. */
function leftovers(): { netns: string[]; runDir: string[]; mounts: string[]; procs: string[]; cgroups: string[] } {
  const mounts = fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(KIND.run) || m.startsWith(`${KIND.cache}/podman/`));
  const procs: string[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (/libpod/.test(fs.readFileSync(`/proc/${e}/cgroup`, 'utf8'))) procs.push(`${e} ${fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim()}`);
    } catch {
      // gone
    }
  }
  // podman's cgroupfs parent: one folder per container while it exists.
  const cgroups: string[] = [];
  for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
    const parent = path.join('/sys/fs/cgroup', ctl, 'libpod_parent');
    try {
      for (const c of fs.readdirSync(parent)) if (fs.statSync(path.join(parent, c)).isDirectory()) cgroups.push(path.join(parent, c));
    } catch {
      // no such controller folder
    }
  }
  return {
    netns: fs.existsSync(`/run/netns/${KIND.netns}`) ? [KIND.netns] : [],
    runDir: fs.existsSync(KIND.run) ? [KIND.run] : [],
    mounts,
    procs,
    cgroups,
  };
}

describe('kind: weir on a real kind cluster', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the kind tier needs root (the cluster lives in a network namespace)');
    const r = await upDefaultLab();
    console.log(
      /already up/.test(r.stdout) ? 'scripts/lab up: reusing the running cluster' : `scripts/lab up: created the cluster in ${(r.ms / 1000).toFixed(1)} s`,
    );
  }, UP_TIMEOUT_MS + DOWN_TIMEOUT_MS);

  afterAll(async () => {
    if (fs.existsSync(`/run/netns/${KIND.netns}`)) await script('scripts/kind-down.sh', [], DOWN_TIMEOUT_MS);
  }, DOWN_TIMEOUT_MS + 10_000);

  it(
    'scripts/e2e-kind.sh passes: pod pairs on one node and across nodes, then the policy demo with curl pods',
    async () => {
      const r = await script('scripts/e2e-kind.sh', [], 15 * 60_000);
      expect(r.out).not.toMatch(/^FAIL/m);
      const m = /^(\d+) passed, (\d+) failed$/.exec(lastLine(r.out));
      expect(m, lastLine(r.out)).not.toBeNull();
      expect(Number(m?.[1])).toBeGreaterThanOrEqual(15);
      expect(Number(m?.[2])).toBe(0);
      expect(r.code).toBe(0);
      console.log(`scripts/e2e-kind.sh: ${lastLine(r.out)} in ${(r.ms / 1000).toFixed(0)} s`);
    },
    16 * 60_000,
  );

  it('every weir-agent reaches the API server at its advertised address, not through the kubernetes Service (kube-proxy)', async () => {
    const slice = JSON.parse(
      await labOk(['kubectl', '-n', 'default', 'get', 'endpointslices', '-l', 'kubernetes.io/service-name=kubernetes', '-o', 'json']),
    ) as { items: { endpoints: { addresses: string[] }[]; ports: { port: number }[] }[] };
    const host = slice.items[0]?.endpoints[0]?.addresses[0];
    const port = String(slice.items[0]?.ports[0]?.port);
    expect(host).toBeTruthy();
    // The agents as the machine sees them: their environment is what the kubelet gave them.
    const pids = spawnSync('pgrep', ['-f', '^/usr/local/bin/weir-agent'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    expect(pids).toHaveLength(3);
    for (const pid of pids) {
      const env = new Map(
        fs
          .readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
      );
      expect({ host: env.get('KUBERNETES_SERVICE_HOST'), port: env.get('KUBERNETES_SERVICE_PORT') }, `weir-agent pid ${pid}`).toEqual({ host, port });
    }
  });

  it(
    'the upstream NetworkPolicy suite, CI subset (ingress, egress, selectors, ipBlock except, named port, UDP, updates), passes',
    async () => {
      const r = await script('scripts/conformance', ['netpol', '--subset', 'ci'], 45 * 60_000);
      const m = /^(\d+) passed, (\d+) failed$/.exec(lastLine(r.out));
      expect(m, lastLine(r.out)).not.toBeNull();
      // Seven cases, two of them also in the UDP variant of the suite.
      expect(Number(m?.[1])).toBeGreaterThanOrEqual(7);
      expect(Number(m?.[2])).toBe(0);
      expect(r.code).toBe(0);
      console.log(`scripts/conformance netpol --subset ci: ${lastLine(r.out)} in ${(r.ms / 1000).toFixed(0)} s`);
    },
    46 * 60_000,
  );

  it(
    'scripts/kind-down.sh leaves no namespace, podman container, mount, cgroup or process behind (and twice is fine)',
    async () => {
      const before = leftovers();
      expect(before.netns).toEqual([KIND.netns]);
      expect(before.procs.length).toBeGreaterThan(0);
      const r = await script('scripts/kind-down.sh', [], DOWN_TIMEOUT_MS);
      expect(r.code, r.out).toBe(0);
      expect(leftovers()).toEqual({ netns: [], runDir: [], mounts: [], procs: [], cgroups: [] });
      const again = spawnSync(path.join(REPO, 'scripts/kind-down.sh'), [], { encoding: 'utf8' });
      expect(again.status, again.stderr).toBe(0);
      console.log(`scripts/kind-down.sh: ${(r.ms / 1000).toFixed(1)} s`);
    },
    DOWN_TIMEOUT_MS + 30_000,
  );
});
