// The recorder's timestamps: each watch line is dated by a process of its
// own as it leaves kubectl (STAMP_LINES), so a busy soak loop cannot date a
// change after the probes it affected.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { STAMP_LINES, unstamp } from '../../../lab/soak/recorder.ts';

describe("the recorder's line stamps", () => {
  it('STAMP_LINES dates each stdout line when it is written, passes stderr and the exit code through', () => {
    const before = Date.now();
    const r = spawnSync(process.execPath, ['-e', STAMP_LINES, 'sh', '-c', 'echo one; sleep 0.3; echo two >&2; echo "{\\"a\\":1}"; exit 3'], {
      encoding: 'utf8',
    });
    const after = Date.now();
    expect(r.status).toBe(3);
    expect(r.stderr).toBe('two\n');
    const lines = r.stdout.trim().split('\n').map(unstamp);
    expect(lines.map((l) => l?.text)).toEqual(['one', '{"a":1}']);
    const [one, two] = lines.map((l) => l?.at ?? 0) as [number, number];
    expect(one).toBeGreaterThanOrEqual(before);
    expect(two).toBeLessThanOrEqual(after);
    // The second line was written 0.3 s after the first, and is dated so.
    expect(two - one).toBeGreaterThanOrEqual(250);
  });

  it('a command that cannot start exits 127 with the reason', () => {
    const r = spawnSync(process.execPath, ['-e', STAMP_LINES, '/nonexistent/kubectl'], { encoding: 'utf8' });
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/ENOENT/);
  });

  it('unstamp refuses a line without a time', () => {
    expect(unstamp('12\tx\ty')).toEqual({ at: 12, text: 'x\ty' });
    expect(unstamp('{"type":"ADDED"}')).toBeUndefined();
    expect(unstamp('abc\tx')).toBeUndefined();
  });
});
