// A real Kubernetes control plane for a test file (lab/controlplane), in a
// throw-away network namespace.
//
//   const fx = useControlPlane('agent', { controllerManager: { clusterCIDR: '10.244.0.0/16' } });
//   it('...', () => { fx.cp.kubectl(['get', 'ns']); });
//
// beforeAll creates the namespace (lo up), a temp state dir, and starts the
// control plane (by default on 127.0.0.1 inside the namespace); afterAll
// stops every process, deletes the namespace and the dir, even when a test or
// the start itself failed. Set WEIR_KEEP_CONTROLPLANE=1 to keep the dir (logs,
// PKI) for a post-mortem.
//
// Network safety: the only address configured is `advertiseAddress` (when it
// is not loopback), on lo inside the test's own namespace.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from '../../lab/controlplane/index.ts';
import { createNetns, sweepLeakedNetns, type TestNetns } from './netns.ts';
import { tryEach } from './teardown.ts';

export type FixtureOptions = Partial<Omit<ControlPlaneOptions, 'netns' | 'dir'>>;

export interface ControlPlaneFixture {
  /** The running control plane (after beforeAll). */
  readonly cp: ControlPlane;
  /** The namespace it runs in. */
  readonly netns: TestNetns;
  readonly dir: string;
  /** How long startControlPlane took, in ms. */
  readonly startupMs: number;
}

/** kubectl against the fixture's control plane, which must succeed (its stdout), and `apply` of one object. */
export function kubectlOf(fx: ControlPlaneFixture): { kubectl: (args: string[], input?: string) => string; apply: (obj: unknown) => string } {
  const kubectl = (args: string[], input?: string): string => {
    const r = fx.cp.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return { kubectl, apply: (obj) => kubectl(['apply', '-f', '-'], JSON.stringify(obj)) };
}

/** Enough for a first-time build of the pinned binaries (scripts/k8s/build, ~8 min); a built machine needs seconds. */
const START_TIMEOUT_MS = 15 * 60_000;
const STOP_TIMEOUT_MS = 60_000;

/** Creates a namespace with lo up (and `advertiseAddress` on lo if it is not a loopback address). */
export function controlPlaneNetns(prefix: string, advertiseAddress = '127.0.0.1'): TestNetns {
  const ns = createNetns(prefix);
  try {
    ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    if (!advertiseAddress.startsWith('127.') && advertiseAddress !== '::1') {
      // On lo: nothing else to set up, and no kernel module needed (dummy may be missing).
      const v6 = advertiseAddress.includes(':');
      ns.sh(['ip', ...(v6 ? ['-6'] : []), 'addr', 'add', `${advertiseAddress}/${v6 ? 128 : 32}`, 'dev', 'lo', ...(v6 ? ['nodad'] : [])]);
    }
  } catch (e) {
    ns.destroy();
    throw e;
  }
  return ns;
}

export function useControlPlane(prefix: string, options: FixtureOptions = {}): ControlPlaneFixture {
  sweepLeakedNetns(prefix);
  let cp: ControlPlane | undefined;
  let netns: TestNetns | undefined;
  let dir: string | undefined;
  let startupMs = 0;
  const onExit = (): void => {
    // Processes are SIGKILLed by lab/controlplane's own exit hook (and their parent-death signal).
    try {
      netns?.destroy();
    } catch {
      // best effort on the way out
    }
  };

  beforeAll(async () => {
    process.once('exit', onExit);
    const advertiseAddress = options.advertiseAddress ?? '127.0.0.1';
    netns = controlPlaneNetns(prefix, advertiseAddress);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `weir-cp-${prefix}-`));
    const t0 = Date.now();
    cp = await startControlPlane({ ...options, advertiseAddress, netns: netns.name, dir });
    startupMs = Date.now() - t0;
    console.log(`control plane (${prefix}) ready in ${startupMs} ms: ${JSON.stringify(cp.timings)}`);
  }, START_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await tryEach([
        () => cp?.stop(),
        () => {
          const left = cp?.pids() ?? [];
          if (left.length > 0) throw new Error(`control plane processes still running after stop: ${left.join(' ')}`);
        },
        () => netns?.destroy(),
        () => {
          if (dir && process.env.WEIR_KEEP_CONTROLPLANE !== '1') fs.rmSync(dir, { recursive: true, force: true });
          else if (dir) console.log(`control plane state kept in ${dir}`);
        },
      ]);
    } finally {
      process.removeListener('exit', onExit);
    }
  }, STOP_TIMEOUT_MS);

  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`control plane fixture: ${what} is not available (beforeAll has not run or failed)`);
    return v;
  };
  return {
    get cp() {
      return need(cp, 'cp');
    },
    get netns() {
      return need(netns, 'netns');
    },
    get dir() {
      return need(dir, 'dir');
    },
    get startupMs() {
      return startupMs;
    },
  };
}
