// weirctl's view of the agent's self-checks: doctor's "table inet weir" and
// "agent cache = API" checks from /verify/kernel and /verify/cache, and the
// Kernel line of `weirctl status`.
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../../src/agent/kernel-verifier.ts';
import { checkCache, checkKernelTable } from '../../../src/weirctl/commands/doctor-checks.ts';
import { kernelLine } from '../../../src/weirctl/commands/status.ts';

const clean: CheckResult = { at: '2026-01-01T00:00:00.000Z', ms: 12, kind: 'full', clean: true, drift: { counts: {}, examples: [] } };
const drifted: CheckResult = {
  ...clean,
  clean: false,
  drift: { counts: { 'element-missing': 1 }, examples: [{ reason: 'element-missing', object: 'known4', detail: "10.244.1.5 is not in the kernel's set" }] },
  repaired: true,
  afterRepair: { clean: true, drift: { counts: {}, examples: [] } },
};

describe('doctor: self-checks', () => {
  it('table: passes when the agent finds no drift, fails naming it', () => {
    expect(checkKernelTable(undefined, clean)).toMatchObject({ ok: true });
    const f = checkKernelTable(undefined, drifted);
    expect(f.ok).toBe(false);
    expect(f.detail).toContain('element-missing 1');
    expect(f.detail).toContain('known4: 10.244.1.5');
  });

  it('cache: names the objects that differ', () => {
    expect(checkCache({ ok: true, kinds: ['pods'], differences: [] })).toMatchObject({ ok: true });
    const f = checkCache({
      ok: false,
      kinds: ['namespaces'],
      differences: [{ kind: 'namespaces', cache: { count: 2, hash: 'a' }, api: { count: 1, hash: 'b' }, missing: [], extra: ['demo'], stale: [] }],
    });
    expect(f).toMatchObject({ ok: false });
    expect(f.detail).toContain('namespaces: extra (deleted from the API) demo');
    expect(checkCache(undefined, 'GET /verify/cache answered 404')).toMatchObject({ ok: false, detail: 'not checked: GET /verify/cache answered 404' });
  });
});

describe('status: kernel line', () => {
  it('says what the last check found and what was repaired', () => {
    expect(kernelLine({ lastCheck: clean, repairs: 0, fullCheckSpacingMs: 5000, fallbacks: 0 }, false)).toMatch(
      /^matches the applied ruleset \(full check at .*\); 0 repair\(s\), 0 incremental/,
    );
    expect(kernelLine({ lastCheck: drifted, repairs: 1, fullCheckSpacingMs: 5000, fallbacks: 2 }, false)).toMatch(
      /^drift found at .*: element-missing 1, repaired; 1 repair\(s\), 2 incremental/,
    );
  });
});
