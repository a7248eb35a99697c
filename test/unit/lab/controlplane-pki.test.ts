// The control-plane launcher's pure helpers (lab/controlplane/pki.ts); the
// launcher itself runs in test/kernel/controlplane.test.ts.
import { describe, expect, it } from 'vitest';
import { ControlPlaneError } from '../../../lab/controlplane/index.ts';
import { firstAddress } from '../../../lab/controlplane/pki.ts';

describe('pure helpers', () => {
  it('firstAddress: the kubernetes Service ClusterIP of a CIDR', () => {
    expect(firstAddress('10.96.0.0/16')).toBe('10.96.0.1');
    expect(firstAddress('10.96.5.7/12')).toBe('10.96.0.1');
    expect(firstAddress('fd00:10:96::/108')).toBe('fd00:10:96:0:0:0:0:1');
    expect(() => firstAddress('10.96.0.0')).toThrow(ControlPlaneError);
    expect(() => firstAddress('10.96.0.0/32')).toThrow(ControlPlaneError);
  });
});
