// The Dockerfile, checked without Docker (no engine, and no base image can be
// pulled here): a small parser, then the rules a linter such as hadolint
// applies that matter here (pinned bases by tag and digest, no `latest`, apt
// with --no-install-recommends, pinned versions and its lists removed, exec
// form, no ADD of URLs), and the project's own: it builds with the pinned
// Node, every path it copies exists (build-stage sources in the repository
// and let through by .dockerignore; final-stage sources in the build output
// of `npm run build`), and it puts the executables where deploy/weir.yaml
// runs them.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../../..');
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string; license: string };
const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };

// ---- a Dockerfile parser: enough of the syntax for this file ----

interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  op: string;
  /** The rest of the logical line, continuations joined. */
  args: string;
  line: number;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  let current: { text: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const trimmed = raw.trim();
    // Comment lines (and parser directives) are dropped, inside continuations too.
    if (trimmed.startsWith('#') || (trimmed === '' && !current)) continue;
    if (trimmed === '' && current) continue;
    const cont = /\\\s*$/.test(raw);
    const piece = cont ? raw.replace(/\\\s*$/, '') : raw;
    if (current) current.text += ` ${piece.trim()}`;
    else current = { text: piece.trim(), line: i + 1 };
    if (!cont) {
      const m = /^(\S+)\s*(.*)$/s.exec(current.text);
      if (m) out.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).replace(/\s+/g, ' ').trim(), line: current.line });
      current = undefined;
    }
  }
  if (current) throw new Error(`line ${current.line}: the file ends inside a continuation`);
  return out;
}

function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const words = ins.args.split(' ').filter((w) => !w.startsWith('--'));
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      out.push({ image: words[0] as string, name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else if (out.length > 0) {
      (out[out.length - 1] as Stage).instructions.push(ins);
    } else if (ins.op !== 'ARG') {
      throw new Error(`line ${ins.line}: ${ins.op} before the first FROM`);
    }
  }
  return out;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
  line: number;
}

function copyOf(ins: Instruction): Copy {
  const words = ins.args.split(' ');
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  if (paths[0]?.startsWith('[')) throw new Error(`line ${ins.line}: JSON-form COPY is not handled by this parser`);
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1] as string, line: ins.line };
}

/** Values of ARG NAME=default in a stage (or before the first FROM). */
const argDefaults = (ins: Instruction[]): Map<string, string> =>
  new Map(
    ins
      .filter((i) => i.op === 'ARG')
      .map((i) => i.args.split('='))
      .filter((kv) => kv.length === 2)
      .map(([k, v]) => [k as string, (v as string).replace(/^"|"$/g, '')]),
  );

/** LABEL k="v" k2="v2" ... */
function labels(ins: Instruction[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of ins.filter((x) => x.op === 'LABEL')) {
    for (const m of i.args.matchAll(/([\w.-]+)=("((?:[^"\\]|\\.)*)"|\S+)/g)) out.set(m[1] as string, m[3] ?? (m[2] as string));
  }
  return out;
}

/** .dockerignore semantics (moby/patternmatcher): the last matching pattern wins; a pattern matching a parent directory matches its contents. */
function dockerignored(patterns: string[], rel: string): boolean {
  // NUL marks `**` while `*` is rewritten; no path contains it.
  const DOUBLE_STAR = '\u0000';
  const toRe = (p: string): RegExp =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]]/g, '\\$&')
        .replace(/\*\*/g, DOUBLE_STAR)
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replaceAll(DOUBLE_STAR, '.*')}$`,
    );
  const prefixes = rel.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const neg = raw.startsWith('!');
    const p = path.posix.normalize((neg ? raw.slice(1) : raw).trim()).replace(/^\/+|\/+$/g, '');
    if (!p) continue;
    const re = toRe(p);
    if (prefixes.some((x) => re.test(x))) ignored = !neg;
  }
  return ignored;
}

const walk = (abs: string): string[] => (fs.statSync(abs).isDirectory() ? fs.readdirSync(abs).flatMap((n) => walk(path.join(abs, n))) : [abs]);

// ---- the file ----

const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const all = parseDockerfile(dockerfile);
// Base images are ARGs declared before the first FROM (so that a machine that
// cannot pull them can pass stand-ins); what is pinned is their default.
const globalArgs = argDefaults(
  all.slice(
    0,
    all.findIndex((i) => i.op === 'FROM'),
  ),
);
const st = stages(all).map((s) => ({ ...s, image: s.image.replace(/^\$\{(\w+)\}$/, (m, name: string) => globalArgs.get(name) ?? m) }));
const build = st[0] as Stage;
const final = st[st.length - 1] as Stage;
const ignorePatterns = fs
  .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('the parser', () => {
  it('joins continuations, drops comments, splits stages and COPY', () => {
    const ins = parseDockerfile(
      '# syntax=docker/dockerfile:1\nFROM a:1@sha256:x AS b\n# c\nRUN x \\\n  # inner comment\n  && y\nFROM d:2\nCOPY --from=b /s/1 /s/2 /d/\n',
    );
    expect(ins.map((i) => i.op)).toEqual(['FROM', 'RUN', 'FROM', 'COPY']);
    expect(ins[1]?.args).toBe('x && y');
    const s = stages(ins);
    expect(s.map((x) => [x.image, x.name])).toEqual([
      ['a:1@sha256:x', 'b'],
      ['d:2', undefined],
    ]);
    expect(copyOf(s[1]?.instructions[0] as Instruction)).toMatchObject({ from: 'b', sources: ['/s/1', '/s/2'], dest: '/d/' });
  });

  it('matches .dockerignore as Docker does: last match wins, parents count', () => {
    const p = ['*', '!src/', '!scripts/build.mjs', 'src/**/*.test.ts'];
    expect(dockerignored(p, 'node_modules/x')).toBe(true);
    expect(dockerignored(p, 'src/a/b.ts')).toBe(false);
    expect(dockerignored(p, 'src/a/b.test.ts')).toBe(true);
    expect(dockerignored(p, 'scripts/build.mjs')).toBe(false);
    expect(dockerignored(p, 'scripts/demo')).toBe(true);
  });
});

describe('Dockerfile: lint rules', () => {
  it('is multi-stage: a build stage, then a final stage', () => {
    expect(st.length).toBeGreaterThanOrEqual(2);
    expect(build.name).toBe('build');
  });

  it('pins every base image by exact tag and digest; no latest', () => {
    const stageNames = new Set(st.map((s) => s.name).filter(Boolean));
    for (const s of st) {
      if (stageNames.has(s.image)) continue;
      expect(s.image, s.image).toMatch(/^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/);
      expect(s.image).not.toMatch(/:latest\b/);
      expect(s.image, 'no ARG-substituted base').not.toContain('$');
    }
    expect(dockerfile).not.toMatch(/:latest\b/);
    // A `# syntax=` directive makes BuildKit fetch a frontend image: pinned by digest, or none.
    const syntax = /^#\s*syntax\s*=\s*(\S+)/m.exec(dockerfile)?.[1];
    if (syntax !== undefined) expect(syntax).toMatch(/@sha256:[0-9a-f]{64}$/);
  });

  it('builds with the Node the project pins (the node devDependency), on Debian 12', () => {
    const node = lock.packages['node_modules/node']?.version;
    expect(node).toMatch(/^24\.\d+\.\d+$/);
    expect(build.image.startsWith(`node:${node}-bookworm-slim@`), build.image).toBe(true);
  });

  it('the final stage is a small Debian 12 (bookworm slim, dated tag)', () => {
    expect(final.image).toMatch(/^debian:bookworm-\d{8}-slim@sha256:/);
  });

  it('dependencies come from the lockfile (npm ci), and the build is `npm run build`', () => {
    const runs = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /^npm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => /(^|&& )npm install\b/.test(r))).toBe(false);
    expect(runs.some((r) => /^npm run build\b/.test(r))).toBe(true);
  });

  it('apt: update and install in one RUN, -y, --no-install-recommends, every package at an exact version, lists removed', () => {
    const apt = all.filter((i) => i.op === 'RUN' && /apt-get install/.test(i.args));
    expect(apt.length).toBeGreaterThan(0);
    for (const i of apt) {
      expect(i.args, `line ${i.line}`).toMatch(/apt-get update/);
      expect(i.args).toMatch(/--no-install-recommends/);
      expect(i.args).toMatch(/ -y /);
      expect(i.args).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
      expect(i.args).not.toMatch(/apt-get (dist-)?upgrade/);
      const pkgs = (/apt-get install (.*?)(&&|$)/.exec(i.args)?.[1] ?? '').split(' ').filter((w) => w && !w.startsWith('-'));
      expect(pkgs.length).toBeGreaterThan(0);
      for (const p of pkgs) expect(p, `line ${i.line}: pin ${p} to a version`).toMatch(/^[a-z0-9.+-]+=[\w.:+~-]+$/);
    }
    expect(
      all.some((i) => i.op === 'RUN' && /\bapt\s+(install|update)/.test(i.args)),
      'apt-get, not apt, in scripts',
    ).toBe(false);
  });

  it('installs libnftables1, the library the agent loads', () => {
    const run = final.instructions.find((i) => i.op === 'RUN' && /apt-get install/.test(i.args));
    expect(run?.args).toMatch(/\blibnftables1=/);
  });

  it('no ADD (COPY only), no sudo, no curl|sh, no cd in RUN (WORKDIR)', () => {
    expect(all.filter((i) => i.op === 'ADD')).toEqual([]);
    for (const i of all.filter((x) => x.op === 'RUN')) {
      expect(i.args, `line ${i.line}`).not.toMatch(/\bsudo\b/);
      expect(i.args).not.toMatch(/\|\s*(ba)?sh\b/);
      expect(i.args).not.toMatch(/(^|&&\s*)cd\s/);
    }
  });

  it('ENTRYPOINT and CMD in exec form; no explicit USER root', () => {
    for (const i of all.filter((x) => x.op === 'ENTRYPOINT' || x.op === 'CMD')) expect(() => JSON.parse(i.args), `line ${i.line}`).not.toThrow();
    expect(final.instructions.filter((i) => i.op === 'USER' && /^(root|0)(:|$)/.test(i.args))).toEqual([]);
  });

  it('has a VERSION build argument (default: this release) and the OCI labels', () => {
    expect(argDefaults(final.instructions).get('VERSION')).toBe(pkg.version);
    const l = labels(final.instructions);
    for (const k of ['title', 'version', 'source', 'licenses', 'description', 'revision']) expect(l.get(`org.opencontainers.image.${k}`), k).toBeTruthy();
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own build-argument reference, kept verbatim in the label.
    expect(l.get('org.opencontainers.image.version')).toBe('${VERSION}');
    expect(l.get('org.opencontainers.image.licenses')).toBe(pkg.license);
    expect(l.get('org.opencontainers.image.title')).toBe('weir');
  });
});

describe('Dockerfile: every path it copies exists', () => {
  const contextCopies = build.instructions.filter((i) => i.op === 'COPY').map(copyOf);
  const stageCopies = final.instructions.filter((i) => i.op === 'COPY').map(copyOf);

  it('build stage: every source is in the repository and let through by .dockerignore', () => {
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const c of contextCopies) {
      expect(c.from, `line ${c.line}`).toBeUndefined();
      for (const s of c.sources) {
        const abs = path.join(REPO, s);
        expect(fs.existsSync(abs), `line ${c.line}: ${s} does not exist`).toBe(true);
        const files = walk(abs).map((f) => path.relative(REPO, f));
        expect(files.length, `line ${c.line}: ${s} holds no file`).toBeGreaterThan(0);
        for (const f of files) expect(dockerignored(ignorePatterns, f), `${f} (COPY line ${c.line}) is excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('.dockerignore keeps node_modules, dist, .git and the tests out of the context', () => {
    for (const p of ['node_modules/koffi/package.json', 'dist/bin/weir', '.git/HEAD', 'test/unit/deploy/dockerfile.test.ts', 'lab/cli.ts'])
      expect(dockerignored(ignorePatterns, p), p).toBe(true);
  });

  it('the build stage copies what scripts/build.mjs bundles (esbuild entries and their imports)', () => {
    const copied = contextCopies.flatMap((c) => c.sources).map((s) => s.replace(/\/$/, ''));
    for (const need of ['package.json', 'package-lock.json', 'scripts/build.mjs', 'src']) expect(copied, need).toContain(need);
    const buildScript = fs.readFileSync(path.join(REPO, 'scripts/build.mjs'), 'utf8');
    for (const m of buildScript.matchAll(/entry:\s*'([^']+)'/g)) {
      const top = (m[1] as string).split('/')[0] as string;
      expect(copied, `build.mjs entry ${m[1]}`).toContain(top);
    }
  });

  it("final stage: every source comes from the build stage's dist/bin, which `npm run build` makes", () => {
    expect(stageCopies.length).toBeGreaterThan(0);
    const workdir = build.instructions.filter((i) => i.op === 'WORKDIR').pop()?.args;
    expect(workdir).toBeTruthy();
    const buildScript = fs.readFileSync(path.join(REPO, 'scripts/build.mjs'), 'utf8');
    const declared = new Set([...[...buildScript.matchAll(/name:\s*'([^']+)'/g)].map((m) => m[1]), 'koffi.node']);
    for (const c of stageCopies) {
      expect(c.from, `line ${c.line}`).toBe('build');
      for (const s of c.sources) {
        const rel = path.posix.relative(workdir as string, s);
        expect(rel.startsWith('dist/bin/'), `line ${c.line}: ${s} is not in ${workdir}/dist/bin`).toBe(true);
        const name = path.posix.basename(rel);
        expect(declared.has(name), `line ${c.line}: scripts/build.mjs does not build ${name}`).toBe(true);
        expect(fs.existsSync(path.join(REPO, rel)), `line ${c.line}: ${rel} is not in the build output; run npm run build`).toBe(true);
      }
    }
  });

  it('the image holds what deploy/weir.yaml runs: /usr/local/bin/weir-agent, and weir + koffi.node in the install-cni-from directory', () => {
    const image = new Set<string>();
    for (const c of stageCopies) for (const s of c.sources) image.add(c.dest.endsWith('/') ? `${c.dest}${path.posix.basename(s)}` : c.dest);
    const manifest = fs.readFileSync(path.join(REPO, 'deploy/weir.yaml'), 'utf8');
    const binaries = [...manifest.matchAll(/(\/usr\/local\/bin\/[\w.-]+)/g)].map((m) => m[1] as string);
    expect(binaries.length).toBeGreaterThan(0);
    for (const b of binaries) expect(image.has(b), b).toBe(true);
    const from = /--install-cni-from=(\S+?)[,\s\]]/.exec(manifest)?.[1];
    expect(from).toBe('/usr/local/lib/weir');
    // weir-agent install-cni copies exactly these (src/agent/run.ts installCni).
    for (const f of ['weir', 'koffi.node']) expect(image.has(`${from}/${f}`), `${from}/${f}`).toBe(true);
    // Each single-executable application loads koffi.node from its own directory (src/sys/ffi.ts).
    for (const f of image) if (!f.endsWith('.node')) expect(image.has(`${path.posix.dirname(f)}/koffi.node`), `koffi.node beside ${f}`).toBe(true);
    expect(image.has('/usr/local/bin/weirctl')).toBe(true);
  });
});

describe('Dockerfile: the Debian packages it pins exist in Debian 12', () => {
  const pins = [...(final.instructions.find((i) => i.op === 'RUN' && /apt-get install/.test(i.args))?.args.matchAll(/([a-z0-9.+-]+)=([\w.:+~-]+)/g) ?? [])].map(
    (m) => [m[1] as string, m[2] as string] as const,
  );
  const osRelease = fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '';
  const bookworm = /^VERSION_CODENAME=bookworm$/m.test(osRelease);
  const policy = (p: string): string => spawnSync('apt-cache', ['policy', p], { encoding: 'utf8' }).stdout ?? '';
  const haveLists = bookworm && /Candidate: (?!\(none\))/.test(policy('libnftables1'));

  // Only a Debian 12 machine with package lists can answer; elsewhere the rule above (exact versions) stands alone.
  it.skipIf(!haveLists)('each pinned version is one apt on this Debian 12 machine knows (a replaced version would fail the image build)', () => {
    expect(pins.length).toBeGreaterThan(0);
    for (const [name, version] of pins) {
      const known = [...policy(name).matchAll(/^\s+(?:\*\*\* )?(\S+) \d+$/gm)].map((m) => m[1]);
      expect(known, `${name}=${version}: apt-cache policy ${name} knows ${known.join(', ')}`).toContain(version);
    }
  });
});
