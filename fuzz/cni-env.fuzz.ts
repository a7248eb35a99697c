// Fuzzes the plugin's environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
// CNI_IFNAME, CNI_ARGS, CNI_PATH) over a valid config on stdin. Each
// variable is absent, empty, a plausible or hostile value, or arbitrary text,
// so the fuzzer reaches each verb's validation past the earlier checks.
import { envCase } from './lib/cni-inputs.ts';
import { runAndCheck } from './lib/cni-run.ts';

export async function fuzz(data: Buffer): Promise<void> {
  const c = envCase(data);
  await runAndCheck(c.env, c.stdin);
}
