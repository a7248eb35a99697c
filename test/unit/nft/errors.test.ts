// NftError and the errno that libnftables' error text maps to.
import { describe, expect, it } from 'vitest';
import { Errno, WeirError } from '../../../src/errors.ts';
import { errnoFromNftMessage, FakeNft, isNftBusy, isNftExists, isNftInvalid, isNftNotFound, NFT_KEYWORDS, NftError } from '../../../src/nft/index.ts';

describe('NftError', () => {
  it('is a WeirError with code WEIR_NFT and the internal CNI code', () => {
    const e = new NftError('boom', { errno: Errno.ENOENT, line: 3, command: 'add chain inet t c', op: 2, details: 'Error: ...' });
    expect(e).toBeInstanceOf(WeirError);
    expect(e).toMatchObject({
      name: 'NftError',
      code: 'WEIR_NFT',
      cniCode: 199,
      errno: 2,
      line: 3,
      command: 'add chain inet t c',
      op: 2,
      details: 'Error: ...',
    });
    expect([isNftNotFound(e), isNftExists(e), isNftBusy(e), isNftInvalid(e)]).toEqual([true, false, false, false]);
    expect(isNftNotFound(new Error('No such file or directory'))).toBe(false);
  });
});

describe('errnoFromNftMessage', () => {
  it('reads the strerror text libnftables prints', () => {
    expect(errnoFromNftMessage('Could not process rule: No such file or directory')).toBe(Errno.ENOENT);
    expect(errnoFromNftMessage("No such file or directory; did you mean chain 'a' in table inet 't'?")).toBe(Errno.ENOENT);
    expect(errnoFromNftMessage('element does not exist')).toBe(Errno.ENOENT);
    expect(errnoFromNftMessage('Could not process rule: File exists')).toBe(Errno.EEXIST);
    expect(errnoFromNftMessage('Could not process rule: Device or resource busy')).toBe(Errno.EBUSY);
    expect(errnoFromNftMessage('Could not process rule: Operation not supported')).toBe(Errno.EOPNOTSUPP);
    expect(errnoFromNftMessage('Could not process rule: Invalid argument')).toBe(Errno.EINVAL);
    expect(errnoFromNftMessage('syntax error, unexpected newline')).toBeUndefined();
    expect(errnoFromNftMessage('datatype mismatch, expected IPv4 address')).toBeUndefined();
  });
});

describe('NFT_KEYWORDS', () => {
  it('holds the global keywords of nft 1.0.6 and later, not the scoped ones', () => {
    for (const k of ['fwd', 'ct', 'ip', 'ip6', 'tcp', 'udp', 'meta', 'counter', 'accept', 'drop', 'jump', 'goto', 'table', 'destroy', 'vxlan'])
      expect(NFT_KEYWORDS.has(k), k).toBe(true);
    for (const k of ['state', 'saddr', 'daddr', 'dport', 'name', 'weir', 'pods']) expect(NFT_KEYWORDS.has(k), k).toBe(false);
  });
});

describe('list', () => {
  it('refuses a table name that would smuggle in a command', () => {
    expect(() => new FakeNft().list('inet', 'x; flush ruleset')).toThrow(expect.objectContaining({ errno: Errno.EINVAL }));
  });
});
