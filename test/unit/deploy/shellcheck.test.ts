// Every shell script under scripts/ (found by its #! line) passes shellcheck,
// at every severity. shellcheck comes from Debian (scripts/setup installs it).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../../..');

/** Files under scripts/ whose first line is a bash or sh #! line. */
function shellScripts(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const head = fs.readFileSync(p, 'utf8').slice(0, 200).split('\n')[0] ?? '';
        if (/^#!\s*\/(usr\/)?bin\/(env\s+)?(ba)?sh\b/.test(head)) out.push(path.relative(REPO, p));
      }
    }
  };
  walk(path.join(REPO, 'scripts'));
  return out.sort();
}

// Findings in scripts written before shellcheck ran here, excluded by code for
// that file only (every other check still applies to it). Each is a one-line
// fix; drop its entry once fixed.
//   SC2164: `cd "$(dirname "$0")/.."` without `|| exit` under `set -u` only
//   SC2016: a single-quoted node -e program (intended)
//   SC2086: `kill $pids` (intended word splitting)
const KNOWN: Record<string, string[]> = {};

const version = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
const haveShellcheck = version.status === 0;

describe('shellcheck', () => {
  it('is installed (scripts/setup installs it)', () => {
    expect(haveShellcheck, 'shellcheck is missing: run scripts/setup').toBe(true);
  });

  it('finds the scripts the kind workflow and the project run', () => {
    const found = shellScripts();
    for (const s of [
      'scripts/kind-up.sh',
      'scripts/e2e-kind.sh',
      'scripts/kind-down.sh',
      'scripts/gen-manifests',
      'scripts/setup',
      'scripts/test',
      'scripts/demo',
      'scripts/lab',
    ])
      expect(found, s).toContain(s);
  });

  for (const script of shellScripts()) {
    it.runIf(haveShellcheck)(`${script} passes`, () => {
      const exclude = KNOWN[script] ?? [];
      const r = spawnSync(
        'shellcheck',
        ['--shell=bash', '--severity=style', '--external-sources', ...(exclude.length ? [`--exclude=${exclude.join(',')}`] : []), script],
        { cwd: REPO, encoding: 'utf8' },
      );
      expect(`${r.stdout}${r.stderr}`.trim(), script).toBe('');
      expect(r.status).toBe(0);
    });
  }
});
