import { describe, expect, it } from 'vitest';
import { formatError } from '../../../src/cni/errors-json.ts';
import { DecodeError, IncompatibleVersionError, InvalidConfigError, InvalidEnvironmentError, NetlinkError, RangeExhaustedError } from '../../../src/errors.ts';

describe('formatError', () => {
  it('maps WeirErrors to their CNI codes', () => {
    expect(formatError(new InvalidEnvironmentError('required env variables [CNI_NETNS] missing'), '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 4,
      msg: 'required env variables [CNI_NETNS] missing',
    });
    expect(formatError(new IncompatibleVersionError('config version does not allow GC', { details: 'GC needs 1.1.0' }), '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 1,
      msg: 'config version does not allow GC',
      details: 'GC needs 1.1.0',
    });
    expect(formatError(new DecodeError('bad json'), '1.1.0').code).toBe(6);
    expect(formatError(new InvalidConfigError('mtu: too small'), '1.1.0').code).toBe(7);
    expect(formatError(new RangeExhaustedError('no free address in 10.244.1.0/24'), '1.1.0').code).toBe(100);
    expect(formatError(new NetlinkError('RTM_NEWLINK', 17), '1.1.0')).toEqual({ cniVersion: '1.1.0', code: 101, msg: 'RTM_NEWLINK: EEXIST (errno 17)' });
  });

  it('turns anything else into 199 with only the message', () => {
    const e = new TypeError('cannot read properties of undefined');
    const out = formatError(e, '1.1.0');
    expect(out).toEqual({ cniVersion: '1.1.0', code: 199, msg: 'cannot read properties of undefined' });
    expect(JSON.stringify(out)).not.toContain('    at ');
    expect(formatError('boom', '1.1.0')).toEqual({ cniVersion: '1.1.0', code: 199, msg: 'boom' });
    expect(formatError({ weird: true }, '1.1.0')).toEqual({ cniVersion: '1.1.0', code: 199, msg: 'internal error' });
    expect(formatError(undefined, '1.1.0')).toEqual({ cniVersion: '1.1.0', code: 199, msg: 'internal error' });
  });

  it('cuts stack frames folded into a message', () => {
    const e = new Error(`outer failed: ${new Error('inner').stack ?? ''}`);
    const out = formatError(e, '1.1.0');
    expect(out.msg.startsWith('outer failed: Error: inner')).toBe(true);
    expect(out.msg).not.toMatch(/\bat\s/);
    expect(out.msg).not.toContain('\n');
  });

  it('caps very long messages', () => {
    expect(formatError(new Error('x'.repeat(5000)), '1.1.0').msg.length).toBeLessThanOrEqual(1025);
  });

  it('uses 1.1.0 when the invocation version is unknown or malformed', () => {
    expect(formatError(new DecodeError('x')).cniVersion).toBe('1.1.0');
    expect(formatError(new DecodeError('x'), 'garbage').cniVersion).toBe('1.1.0');
    // a well-formed but unsupported version is echoed, so the runtime reads it back naturally
    expect(formatError(new IncompatibleVersionError('no'), '0.2.0').cniVersion).toBe('0.2.0');
  });
});
