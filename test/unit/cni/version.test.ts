import { describe, expect, it } from 'vitest';
import {
  assertCommandAllowed,
  compareVersions,
  highestSupported,
  isSupportedVersion,
  negotiateVersion,
  parseVersion,
  parseVersionRequest,
  SUPPORTED_VERSIONS,
  versionInfo,
} from '../../../src/cni/version.ts';
import { failure } from './helpers.ts';

describe('versions', () => {
  it('supports exactly the listed versions', () => {
    expect([...SUPPORTED_VERSIONS]).toEqual(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    expect(isSupportedVersion('1.1.0')).toBe(true);
    expect(isSupportedVersion('1.1')).toBe(false);
    expect(isSupportedVersion('0.2.0')).toBe(false);
    expect(isSupportedVersion('1.2.0')).toBe(false);
  });

  it('parses major[.minor[.patch]]', () => {
    expect(parseVersion('1.1.0')).toEqual([1, 1, 0]);
    expect(parseVersion('1')).toEqual([1, 0, 0]);
    expect(parseVersion('0.4')).toEqual([0, 4, 0]);
    for (const bad of ['', 'v1.0.0', '1.0.0.0', '1.0.0-rc1', '1..0', 'a.b.c', ' 1.0.0']) expect(parseVersion(bad)).toBeUndefined();
  });

  it('compares numerically, not as text', () => {
    expect(compareVersions('0.10.0', '0.4.0')).toBe(1);
    expect(compareVersions('0.3.1', '0.4.0')).toBe(-1);
    expect(compareVersions('1.0', '1.0.0')).toBe(0);
    expect(compareVersions('1.1.0', '1.0.9')).toBe(1);
    expect(failure(() => compareVersions('x', '1.0.0')).code).toBe(1);
  });

  it('picks the highest supported version', () => {
    expect(highestSupported(['0.3.1', '1.1.0', '1.0.0'])).toBe('1.1.0');
    expect(highestSupported(['2.0.0', '1.0.0', '0.4.0'])).toBe('1.0.0');
    expect(highestSupported(['0.2.0', '9.9.9'])).toBeUndefined();
  });
});

describe('negotiateVersion', () => {
  it('uses cniVersion when it is given and supported', () => {
    expect(negotiateVersion('0.4.0')).toBe('0.4.0');
    // the runtime already chose; a higher cniVersions entry does not override it
    expect(negotiateVersion('1.0.0', ['1.0.0', '1.1.0'])).toBe('1.0.0');
  });

  it('negotiates from cniVersions when cniVersion is absent', () => {
    expect(negotiateVersion(undefined, ['1.0.0', '1.1.0', '0.4.0'])).toBe('1.1.0');
    expect(negotiateVersion('', ['0.3.1', '2.0.0'])).toBe('0.3.1');
  });

  it('refuses with code 1', () => {
    expect(failure(() => negotiateVersion('0.2.0')).code).toBe(1);
    expect(failure(() => negotiateVersion('2.0.0', ['1.1.0'])).code).toBe(1);
    expect(failure(() => negotiateVersion(undefined, ['0.1.0', '3.0.0'])).code).toBe(1);
    expect(failure(() => negotiateVersion(undefined)).code).toBe(1);
    expect(failure(() => negotiateVersion(undefined, [])).code).toBe(1);
  });
});

describe('command floors', () => {
  it('allows ADD and DEL in every supported version', () => {
    for (const v of SUPPORTED_VERSIONS) {
      expect(() => assertCommandAllowed('ADD', v)).not.toThrow();
      expect(() => assertCommandAllowed('DEL', v)).not.toThrow();
    }
  });

  it('allows CHECK from 0.4.0', () => {
    expect(() => assertCommandAllowed('CHECK', '0.4.0')).not.toThrow();
    expect(() => assertCommandAllowed('CHECK', '1.1.0')).not.toThrow();
    const f = failure(() => assertCommandAllowed('CHECK', '0.3.1'));
    expect(f).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
  });

  it.each(['STATUS', 'GC'] as const)('allows %s only from 1.1.0, else code 1', (cmd) => {
    expect(() => assertCommandAllowed(cmd, '1.1.0')).not.toThrow();
    for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0']) {
      expect(failure(() => assertCommandAllowed(cmd, v))).toMatchObject({ code: 1, msg: `config version does not allow ${cmd}` });
    }
  });
});

describe('VERSION output', () => {
  it('echoes the requested version', () => {
    expect(versionInfo('0.4.0')).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(versionInfo('0.2.0').cniVersion).toBe('0.2.0');
  });

  it('answers in 1.1.0 without a usable request', () => {
    expect(versionInfo()).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(versionInfo('garbage').cniVersion).toBe('1.1.0');
  });

  it('returns a fresh list each time', () => {
    versionInfo().supportedVersions.push('9.9.9');
    expect(versionInfo().supportedVersions).not.toContain('9.9.9');
  });

  it('reads the request from stdin without ever throwing', () => {
    expect(parseVersionRequest('{"cniVersion":"1.0.0"}')).toBe('1.0.0');
    expect(parseVersionRequest('')).toBeUndefined();
    expect(parseVersionRequest('not json')).toBeUndefined();
    expect(parseVersionRequest('[1]')).toBeUndefined();
    expect(parseVersionRequest('{"cniVersion":5}')).toBeUndefined();
  });
});
