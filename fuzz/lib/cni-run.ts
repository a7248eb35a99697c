// Runs one invocation in-process and checks it. For an ADD that succeeded it
// goes on as a runtime would: on a 1.1.0 network a GC that lists the new
// attachment as valid must keep its address, and the DEL must free it (no
// leaked address); for an ADD that failed, nothing may have been taken.
import type { CniEnvSource } from '../../src/cni/env.ts';
import { invoke } from '../../src/plugin/invoke.ts';
import { FuzzFinding, assertCniOutcome, assertFast } from './cni-checks.ts';
import { fakePlugin } from './cni-fakes.ts';

/** Per invocation; the pure path takes microseconds, so this only trips on a real hang or blow-up. */
const BOUND_MS = 2000;

/** The config with GC's list of valid attachments, or undefined when stdin is not a 1.1.0 config object. */
function gcStdin(stdin: string, env: CniEnvSource): string | undefined {
  const doc = JSON.parse(stdin) as Record<string, unknown>;
  if (doc['cniVersion'] !== '1.1.0') return undefined;
  return JSON.stringify({ ...doc, 'cni.dev/valid-attachments': [{ containerID: env['CNI_CONTAINERID'], ifname: env['CNI_IFNAME'] }] });
}

export async function runAndCheck(env: CniEnvSource, stdin: string): Promise<void> {
  const { verbs, store } = fakePlugin();
  const held = (): number => store.withLock(() => store.list().length);
  const run = async (command: string, input: string, extra: CniEnvSource = {}) => {
    const t0 = performance.now();
    const o = await invoke({ ...env, ...extra, CNI_COMMAND: command }, input, verbs);
    assertFast(t0, BOUND_MS, command);
    assertCniOutcome(o, command);
    return o;
  };
  const command = String(env['CNI_COMMAND']);
  const o = await run(command, stdin);
  if (command !== 'ADD') return;
  if (o.code !== 0) {
    if (held() !== 0) throw new FuzzFinding('a failed ADD left an address allocated');
    return;
  }
  if (held() !== 1) throw new FuzzFinding(`a successful ADD holds ${held()} records, not 1`);
  const gc = gcStdin(stdin, env);
  if (gc !== undefined) {
    // GC needs CNI_PATH, which a runtime always sets.
    const r = await run('GC', gc, { CNI_PATH: env['CNI_PATH'] || '/opt/cni/bin' });
    if (r.code !== 0) throw new FuzzFinding(`GC of the config ADD accepted failed: ${r.stdout}`);
    if (held() !== 1) throw new FuzzFinding('GC freed an attachment listed as valid');
  }
  const del = await run('DEL', stdin);
  if (del.code !== 0) throw new FuzzFinding(`DEL of a config ADD accepted failed: ${del.stdout}`);
  if (held() !== 0) throw new FuzzFinding('DEL after ADD left an address allocated');
}
