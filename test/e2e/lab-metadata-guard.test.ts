// The cloud metadata guard end to end in the lab (src/policy/metadata-guard.ts;
// on by default, so the default lab has it):
//
//   - a "metadata service": 169.254.169.254 on the loopback of one kind
//     node's network namespace (the node's own namespace, asserted not to be
//     the machine's), with a TCP server the test starts there;
//   - an ordinary pod on that node cannot reach it (dropped, and the drop log
//     names the metadata guard);
//   - a pod with the opt-in label (weir.dev/metadata-access=true), and a pod
//     of a namespace carrying it, reach it.
//
// The lab is reused when it runs this build's agent (its table has the
// guard's chain), else started fresh; the address, the server and the
// namespaces are removed at the end. Needs root.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agnhostPath, inNetns, labState, run } from '../../lab/commands/common.ts';
import { AGNHOST_IMAGE } from '../../lab/kind.ts';
import type { LabState } from '../../lab/state.ts';
import { METADATA_ADDRESSES } from '../../src/policy/metadata-guard.ts';
import { DOWN_TIMEOUT_MS, type LabPodRef, labKubectl, labOk, runningLabPod, UP_TIMEOUT_MS, upDefaultLab } from '../helpers/lab.ts';

const WORKER = 'weir-worker';
const NS = 'e2e-metadata';
const NS_OPTIN = 'e2e-metadata-optin';
const OPT_IN = 'weir.dev/metadata-access';
const METADATA = METADATA_ADDRESSES[4];
const PORT = 8775;

let state: LabState | undefined;
let nodeNetns = '';
let listener: ChildProcess | undefined;

const k = (args: string[], input?: string, timeoutMs?: number): Promise<string> => labKubectl(state, args, input, timeoutMs);
const nftTable = (node: string): Promise<string> => labOk(['node', node, '--', 'nft', 'list', 'table', 'inet', 'weir']);

const podYaml = (ns: string, name: string, labels: Record<string, string>): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: ${JSON.stringify(labels)}}
spec:
  nodeName: ${WORKER}
  containers:
    - name: client
      image: ${AGNHOST_IMAGE}
      args: [pause]
`;

const podNetns = (ns: string, name: string): Promise<LabPodRef> => runningLabPod(state, ns, name, 90_000);

/** One TCP `agnhost connect` to the metadata address from the pod's netns: connected, refused or timeout (dropped). */
async function probe(netnsPath: string): Promise<string> {
  if (!state) throw new Error('no lab');
  const r = await run(inNetns(netnsPath, [agnhostPath(state), 'connect', `${METADATA}:${PORT}`, '--timeout=1000ms', '--protocol=tcp']), { timeoutMs: 20_000 });
  if (r.code === 0) return 'connected';
  const out = `${r.stdout}${r.stderr}`;
  return /REFUSED/.test(out) ? 'refused' : /TIMEOUT/.test(out) ? 'timeout' : `error: ${out.trim()}`;
}

/** Polls until the probe gives `want` (the agent applying the pod's labels), or returns the last outcome after `ms`. */
async function settle(netnsPath: string, want: string, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await probe(netnsPath);
    if (got === want || Date.now() > deadline) return got;
    await sleep(500);
  }
}

/** A TCP server on the metadata address in the node's netns; resolves once it listens. */
function serveMetadata(netns: string): Promise<void> {
  const script = `require('net').createServer((c)=>{c.on('error',()=>{});c.end('metadata\\n')}).listen(${PORT},'${METADATA}',()=>console.log('listening'))`;
  listener = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the metadata server did not listen within 30 s')), 30_000);
    listener?.once('exit', (code) => reject(new Error(`the metadata server exited (code ${code})`)));
    listener?.stdout?.on('data', (b: Buffer) => {
      if (/listening/.test(b.toString())) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

describe('the metadata guard in the lab', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    await upDefaultLab();
    if (!/chain metadata_guard\b/.test(await nftTable(WORKER))) {
      console.log('the running lab has no metadata guard (another build): starting it again');
      await labOk(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
      await upDefaultLab();
    }
    state = labState();
    const w = state.nodes.find((n) => n.name === WORKER);
    if (!w) throw new Error(`no node ${WORKER} in the lab`);
    nodeNetns = w.netns;
    // The node's own namespace, never the machine's.
    expect(fs.statSync(nodeNetns).ino).not.toBe(fs.statSync('/proc/self/ns/net').ino);
    await k(['delete', 'namespace', NS, NS_OPTIN, '--ignore-not-found', '--wait=true', '--timeout=120s'], undefined, 150_000);
    await run(inNetns(nodeNetns, ['ip', 'addr', 'del', `${METADATA}/32`, 'dev', 'lo']));
    const add = await run(inNetns(nodeNetns, ['ip', 'addr', 'add', `${METADATA}/32`, 'dev', 'lo']));
    if (add.code !== 0) throw new Error(`ip addr add ${METADATA} in ${WORKER}: ${add.stderr}`);
    await serveMetadata(nodeNetns);
    await k(['create', 'namespace', NS]);
    await k(['create', 'namespace', NS_OPTIN]);
    await k(['label', 'namespace', NS_OPTIN, `${OPT_IN}=true`]);
    await k(
      ['apply', '-f', '-'],
      [podYaml(NS, 'plain', { role: 'plain' }), podYaml(NS, 'labelled', { [OPT_IN]: 'true' }), podYaml(NS_OPTIN, 'any', { role: 'any' })].join('---\n'),
    );
  }, UP_TIMEOUT_MS + 300_000);

  afterAll(async () => {
    listener?.kill('SIGKILL');
    if (nodeNetns) await run(inNetns(nodeNetns, ['ip', 'addr', 'del', `${METADATA}/32`, 'dev', 'lo']));
    if (state) await k(['delete', 'namespace', NS, NS_OPTIN, '--ignore-not-found', '--wait=false']).catch(() => '');
  }, 120_000);

  it('an ordinary pod cannot reach the metadata address, and the drop log names the guard', async () => {
    const plain = await podNetns(NS, 'plain');
    expect(await probe(plain.netnsPath)).toBe('timeout');
    type Drop = { direction: string; chain?: string; src?: string; dst?: string; dport?: number };
    let rec: Drop | undefined;
    const deadline = Date.now() + 15_000;
    while (!rec && Date.now() < deadline) {
      const out = await labOk(['node', WORKER, '--', 'weirctl', 'drops', '--limit', '500', '-o', 'json']);
      rec = (JSON.parse(out) as { drops: Drop[] }).drops.find((d) => d.chain === 'metadata-guard' && d.src === plain.ip && d.dport === PORT);
      if (!rec) await probe(plain.netnsPath);
    }
    expect(rec, `a metadata-guard record for ${plain.ip} -> ${METADATA}:${PORT}`).toMatchObject({ direction: 'egress', dst: METADATA });
  }, 180_000);

  it('a pod with the opt-in label reaches it', async () => {
    const labelled = await podNetns(NS, 'labelled');
    expect(await settle(labelled.netnsPath, 'connected')).toBe('connected');
  }, 180_000);

  it('a pod of a namespace with the opt-in label reaches it', async () => {
    const any = await podNetns(NS_OPTIN, 'any');
    expect(await settle(any.netnsPath, 'connected')).toBe('connected');
  }, 180_000);
});
