// The metadata guard's agent flags (src/agent/config.ts): on by default with
// the default opt-in label, off with --metadata-guard=false, another label
// (key or key=value) by --metadata-guard-optin-label, and a label that is
// neither refused at start.
import { describe, expect, it } from 'vitest';
import { parseAgentFlags } from '../../helpers/agent-flags.ts';

const parse = parseAgentFlags;

describe('metadata guard flags', () => {
  it('on by default, with weir.dev/metadata-access=true', async () => {
    expect(await parse([])).toMatchObject({ metadataGuard: true, metadataGuardOptinLabel: 'weir.dev/metadata-access=true' });
  });

  it('off, or another label', async () => {
    expect((await parse(['--metadata-guard=false'])).metadataGuard).toBe(false);
    expect((await parse(['--metadata-guard-optin-label=example.com/cloud'])).metadataGuardOptinLabel).toBe('example.com/cloud');
    expect((await parse(['--metadata-guard-optin-label='])).metadataGuardOptinLabel).toBe('');
  });

  it('refuses a label that is neither a key nor key=value', async () => {
    await expect(parse(['--metadata-guard-optin-label=a=b=c'])).rejects.toThrow(/metadata-guard-optin-label/);
  });
});
