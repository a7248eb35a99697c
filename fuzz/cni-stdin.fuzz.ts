// Fuzzes what the runtime writes on the plugin's stdin (the network config,
// prevResult, GC's attachments) for every verb, under a valid environment,
// in-process through invoke() with the kernel left out (lib/cni-fakes.ts).
import { stdinCase } from './lib/cni-inputs.ts';
import { runAndCheck } from './lib/cni-run.ts';

export async function fuzz(data: Buffer): Promise<void> {
  const c = stdinCase(data);
  if (c) await runAndCheck(c.env, c.stdin);
}
