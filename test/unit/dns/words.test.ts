// weirctl's words for a domainNames peer: the names, and what the agent
// learned for them (matching names only, sorted, the first few shown).
import { describe, expect, it } from 'vitest';
import { describeCnpPeer } from '../../../src/weirctl/commands/policy-tiers.ts';

describe('describeCnpPeer for domain names', () => {
  const peer = { kind: 'domains' as const, names: ['*.allowed.test', 'exact.test'] };

  it('without a learned view: the names only', () => {
    expect(describeCnpPeer(peer)).toBe('domain names *.allowed.test, exact.test');
  });

  it('with one: the matching names and their addresses, the first five, then a count', () => {
    expect(describeCnpPeer(peer, new Map())).toBe('domain names *.allowed.test, exact.test (nothing learned yet)');
    const learned = new Map<string, string[]>([
      ['exact.test', ['10.78.0.1']],
      ['allowed.test', ['10.77.15.251']],
      ['other.test', ['192.0.2.1']],
      ...Array.from({ length: 6 }, (_, i): [string, string[]] => [`n${i}.allowed.test`, [`10.77.0.${i}`, `fd00::${i}`]]),
    ]);
    expect(describeCnpPeer(peer, learned)).toBe(
      'domain names *.allowed.test, exact.test (learned: exact.test 10.78.0.1; n0.allowed.test 10.77.0.0 fd00::0; n1.allowed.test 10.77.0.1 fd00::1; n2.allowed.test 10.77.0.2 fd00::2; n3.allowed.test 10.77.0.3 fd00::3; and 2 more name(s))',
    );
  });
});
