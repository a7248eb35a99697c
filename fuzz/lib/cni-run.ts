// Runs one invocation in-process and checks it. For an ADD that succeeded it
// goes on as a runtime would, checking at each step what a user would:
//   - every address lies in one of the config's podCIDRs;
//   - a CHECK with the printed result as prevResult passes (0.4.0 and later):
//     weir reads back what it prints;
//   - a GC that lists the attachment as valid keeps its address (1.1.0);
//   - the DEL frees it (no leaked address), and a second DEL succeeds too.
// For an ADD that failed, nothing may have been taken.
import { parseNetConf } from '../../src/cni/config.ts';
import type { CniEnvSource } from '../../src/cni/env.ts';
import { cidrContains, parseIp } from '../../src/ip.ts';
import { invoke, type Outcome } from '../../src/plugin/invoke.ts';
import { assertCniOutcome, assertFast, FuzzFinding } from './cni-checks.ts';
import { fakePlugin } from './cni-fakes.ts';

/** Per invocation; the pure path takes microseconds, so this only trips on a real hang or blow-up. */
const BOUND_MS = 2000;

type Doc = Record<string, unknown>;

export async function runAndCheck(env: CniEnvSource, stdin: string): Promise<void> {
  const { verbs, store } = fakePlugin();
  const held = (): number => store.withLock(() => store.list().length);
  const run = async (command: string, input: string, extra: CniEnvSource = {}): Promise<Outcome> => {
    const t0 = performance.now();
    const o = await invoke({ ...env, ...extra, CNI_COMMAND: command }, input, verbs);
    assertFast(t0, BOUND_MS, command);
    assertCniOutcome(o, command);
    return o;
  };
  const mustPass = async (what: string, command: string, input: string, extra?: CniEnvSource): Promise<void> => {
    const o = await run(command, input, extra);
    if (o.code !== 0) throw new FuzzFinding(`${what} failed: ${o.stdout}`);
  };

  const command = String(env['CNI_COMMAND']);
  const o = await run(command, stdin);
  if (command !== 'ADD') return;
  if (o.code !== 0) {
    if (held() !== 0) throw new FuzzFinding('a failed ADD left an address allocated');
    return;
  }
  if (held() !== 1) throw new FuzzFinding(`a successful ADD holds ${held()} records, not 1`);

  const conf = parseNetConf(stdin);
  const result = JSON.parse(o.stdout) as { ips: { address: string }[] };
  for (const { address } of result.ips) {
    const ip = parseIp(address.split('/')[0] ?? '');
    if (!conf.podCIDRs.some((c) => cidrContains(c, ip))) throw new FuzzFinding(`ADD gave ${address}, outside podCIDRs`);
  }
  const doc = JSON.parse(stdin) as Doc;
  if (conf.cniVersion !== '0.3.0' && conf.cniVersion !== '0.3.1') {
    await mustPass('CHECK with the ADD result as prevResult', 'CHECK', JSON.stringify({ ...doc, prevResult: result }));
  }
  if (conf.cniVersion === '1.1.0') {
    // GC needs CNI_PATH, which a runtime always sets.
    const gc = JSON.stringify({ ...doc, 'cni.dev/valid-attachments': [{ containerID: env['CNI_CONTAINERID'], ifname: env['CNI_IFNAME'] }] });
    await mustPass('GC of the config ADD accepted', 'GC', gc, { CNI_PATH: env['CNI_PATH'] || '/opt/cni/bin' });
    if (held() !== 1) throw new FuzzFinding('GC freed an attachment listed as valid');
  }
  await mustPass('DEL of a config ADD accepted', 'DEL', stdin);
  if (held() !== 0) throw new FuzzFinding('DEL after ADD left an address allocated');
  await mustPass('a second DEL', 'DEL', stdin);
}
