// LibNftables against the real kernel (nft 1.0.6 / libnftables1, kernel 6.18).
// Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for setns).
//
// Every test works in a fresh namespace from test/helpers/netns.ts, destroyed
// in afterEach even when the test fails. LibNftables is only ever built with
// `netns`, so nothing here talks to the root namespace's ruleset; afterAll
// checks that `nft list tables` in the root namespace is what it was.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errno } from '../../src/errors.ts';
import type { Nft, NftJson } from '../../src/nft/index.ts';
import { FakeNft, LibNftables, NftError, nft, Transaction } from '../../src/nft/index.ts';
import { Netns } from '../../src/sys/netns.ts';
import { sh, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';

const scope = withNetnsCleanup('nft');

const t = nft.table('inet', 'weir_test', { comment: 'weir kernel test' });
const fwd = nft.chain(t, 'fwd_in', { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept', comment: 'base' });
const polA = nft.chain(t, 'pol_a');
const polB = nft.chain(t, 'pol_b');
const peers = nft.set(t, 'peers', 'ipv4_addr', { flags: ['interval'], comment: 'pod prefixes' });
const svc = nft.set(t, 'svc', 'ipv4_addr . inet_proto . inet_service', { flags: ['interval'] });
const vm = nft.map(t, 'vm', 'ipv4_addr : verdict', { comment: 'pod to policy' });

/** The transaction of the first test: every object kind. */
function fullTransaction(): Transaction {
  return new Transaction()
    .add(t)
    .add(fwd)
    .add(polA)
    .add(polB)
    .add(peers)
    .add(svc)
    .add(vm)
    .add(nft.setElement(t, 'peers', ['10.0.0.0/8'], { comment: 'ten' }))
    .add(nft.setElement(t, 'peers', ['192.168.1.0/24']))
    .add(nft.setElement(t, 'svc', ['10.1.2.3', 'tcp', '80-90'], { comment: 'web' }))
    .add(nft.setElement(t, 'svc', ['10.1.2.4', 'udp', '53']))
    .add(nft.mapElement(t, 'vm', ['10.0.0.1'], 'goto pol_a', { comment: 'pod a' }))
    .add(nft.mapElement(t, 'vm', ['10.0.0.2'], 'goto pol_b'))
    .add(nft.rule(t, 'fwd_in', 'ct state established,related accept', { comment: 'replies' }))
    .add(nft.rule(t, 'fwd_in', 'ip daddr vmap @vm'))
    .add(nft.rule(t, 'pol_a', 'ip saddr @peers counter accept', { comment: 'from peers' }))
    .add(nft.rule(t, 'pol_a', 'ip saddr . meta l4proto . th dport @svc counter accept'))
    .add(nft.rule(t, 'pol_a', 'counter drop', { comment: 'default deny' }))
    .add(nft.rule(t, 'pol_b', 'tcp dport { 80, 443 } counter accept'));
}

interface Ctx {
  ns: TestNetns;
  netns: Netns;
  real: LibNftables;
}
function setup(tag?: string): Ctx {
  const ns = scope.create(tag);
  const netns = Netns.open(ns.path);
  scope.defer(() => netns.close());
  const real = new LibNftables({ netns });
  // Before the namespace goes: an open nft socket would keep it alive.
  scope.defer(() => real.close());
  return { ns, netns, real };
}

type JsonObj = Record<string, Record<string, unknown>>;
/** `nft -j list table inet weir_test` in the namespace, by the nft binary (not by the code under test). */
function listJson(ns: TestNetns, table = 'weir_test'): JsonObj[] {
  return (JSON.parse(ns.sh(['nft', '-j', 'list', 'table', 'inet', table])) as { nftables: JsonObj[] }).nftables;
}
const of = (objs: JsonObj[], kind: string): Record<string, unknown>[] => objs.filter((o) => kind in o).map((o) => o[kind] as Record<string, unknown>);
const byName = (objs: JsonObj[], kind: string, name: string): Record<string, unknown> | undefined => of(objs, kind).find((o) => o.name === name);
const hasTable = (ns: TestNetns, table = 'weir_test'): boolean => ns.run(['nft', 'list', 'table', 'inet', table]).code === 0;
const listText = (ns: TestNetns): string => ns.sh(['nft', '-s', 'list', 'table', 'inet', 'weir_test']);

function thrown(fn: () => void): NftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NftError);
    return e as NftError;
  }
  throw new Error('expected an NftError');
}

describe('libnftables in a test namespace', () => {
  let rootTables = '';
  beforeAll(() => {
    rootTables = sh('nft', ['list', 'tables']); // read only
  });
  afterAll(() => {
    expect(sh('nft', ['list', 'tables'])).toBe(rootTables);
  });

  it('applies every object kind in one call and reads back what nft -j lists', () => {
    const { ns, real } = setup();
    real.run(fullTransaction());
    expect(real.calls).toBe(1);

    const objs = listJson(ns);
    const table = of(objs, 'table')[0];
    expect(table).toMatchObject({ family: 'inet', name: 'weir_test' });
    // nft 1.0.6's JSON leaves table and chain comments out; the text listing has them.
    expect(listText(ns)).toMatch(/^table inet weir_test \{\n\tcomment "weir kernel test"\n/);
    expect(listText(ns)).toMatch(/\tchain fwd_in \{\n\t\tcomment "base"\n\t\ttype filter hook forward priority filter; policy accept;\n/);

    expect(byName(objs, 'chain', 'fwd_in')).toMatchObject({ type: 'filter', hook: 'forward', prio: 0, policy: 'accept' });
    expect(byName(objs, 'chain', 'pol_a')).not.toHaveProperty('hook');
    expect(byName(objs, 'chain', 'pol_b')).toBeDefined();

    expect(byName(objs, 'set', 'peers')).toMatchObject({
      type: 'ipv4_addr',
      flags: ['interval'],
      comment: 'pod prefixes',
      elem: [{ elem: { val: { prefix: { addr: '10.0.0.0', len: 8 } }, comment: 'ten' } }, { prefix: { addr: '192.168.1.0', len: 24 } }],
    });
    expect(byName(objs, 'set', 'svc')).toMatchObject({
      type: ['ipv4_addr', 'inet_proto', 'inet_service'],
      flags: ['interval'],
      elem: [{ elem: { val: { concat: ['10.1.2.3', 'tcp', { range: [80, 90] }] }, comment: 'web' } }, { concat: ['10.1.2.4', 'udp', 53] }],
    });
    expect(byName(objs, 'map', 'vm')).toMatchObject({
      type: 'ipv4_addr',
      map: 'verdict',
      comment: 'pod to policy',
      elem: [
        [{ elem: { val: '10.0.0.1', comment: 'pod a' } }, { goto: { target: 'pol_a' } }],
        ['10.0.0.2', { goto: { target: 'pol_b' } }],
      ],
    });

    const rules = of(objs, 'rule');
    expect(rules.map((r) => [r.chain, r.comment])).toEqual([
      ['fwd_in', 'replies'],
      ['fwd_in', undefined],
      ['pol_a', 'from peers'],
      ['pol_a', undefined],
      ['pol_a', 'default deny'],
      ['pol_b', undefined],
    ]);
    const exprs = (r: Record<string, unknown>): string => JSON.stringify(r.expr);
    expect(exprs(rules[2] as Record<string, unknown>)).toContain('"counter"');
    expect(exprs(rules[2] as Record<string, unknown>)).toContain('"@peers"');
    expect(exprs(rules[1] as Record<string, unknown>)).toContain('"vmap"');

    // The backend's own readers agree with the nft binary.
    expect(real.list('inet', 'weir_test')).toContain('goto pol_a');
    const j: NftJson = real.listJson('inet', 'weir_test');
    expect(j.nftables.filter((o) => 'rule' in o)).toHaveLength(6);
  });

  it('FakeNft stays in step: its dump, replayed by nft, lists exactly what the real transaction made', () => {
    const { ns, real } = setup('real');
    const other = setup('replay');
    const fake = new FakeNft();
    real.run(fullTransaction());
    fake.run(fullTransaction());
    // The fake's dump is an nft script: apply it verbatim in another namespace.
    other.real.runScript(fake.dump());
    expect(listText(other.ns)).toBe(listText(ns));
    // And applying the dump in a fake of its own is a no-op that compares equal.
    expect(fake.list('inet', 'weir_test')).toBe(fake.dump());
  });

  it('a transaction with one bad rule in the middle applies nothing', () => {
    const { ns, real } = setup();
    // Kernel-level failure (the jump target does not exist), on a fresh namespace: not even the table appears.
    const bad = new Transaction()
      .add(t)
      .add(fwd)
      .add(peers)
      .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
      .add(nft.rule(t, 'fwd_in', 'ip saddr @peers counter accept'))
      .add(nft.rule(t, 'fwd_in', 'jump nowhere'))
      .add(polA)
      .add(nft.rule(t, 'pol_a', 'counter'));
    const e = thrown(() => real.run(bad));
    expect(e.errno).toBe(Errno.ENOENT);
    expect(e.line).toBe(6);
    expect(e.op).toBe(5);
    expect(e.command).toBe('add rule inet weir_test fwd_in jump nowhere');
    expect(e.message).toMatch(
      /^nft transaction failed, nothing applied: .*No such file or directory.* \(line 6: add rule inet weir_test fwd_in jump nowhere\)$/,
    );
    expect(e.details).toMatch(/Error: /);
    expect(hasTable(ns)).toBe(false);
    expect(ns.sh(['nft', 'list', 'ruleset'])).toBe('');

    // Parse-time failure (a typo), over an existing table: it stays byte for byte as it was.
    real.run(fullTransaction());
    const before = listText(ns);
    const typo = new Transaction()
      .add(nft.chain(t, 'pol_c'))
      .flush(peers)
      .delete(nft.rule(t, 'fwd_in', '', { handle: 2 }))
      .add(nft.rule(t, 'pol_c', 'ip saddr 10.0.0.1 counter acept'))
      .add(nft.setElement(t, 'peers', ['172.16.0.0/12']));
    const e2 = thrown(() => real.run(typo));
    expect(e2.errno).toBeUndefined();
    expect(e2.message).toMatch(/syntax error/);
    expect(e2.line).toBe(4);
    expect(e2.op).toBe(3);
    expect(listText(ns)).toBe(before);
  });

  it('check() is a dry run: finds kernel errors, applies nothing', () => {
    const { ns, real } = setup();
    real.check(fullTransaction());
    expect(hasTable(ns)).toBe(false);
    // The same instance then applies it: the check's would-be state must not linger in a kept context
    // (it did once: "interval overlaps with an existing one").
    real.run(fullTransaction());
    expect(() => real.check(new Transaction().create(t))).toThrow(expect.objectContaining({ errno: Errno.EEXIST }));
    expect(() => real.check(new Transaction().delete(polA))).toThrow(expect.objectContaining({ errno: Errno.EBUSY }));
    const before = listText(ns);
    real.check(new Transaction().delete(t));
    expect(listText(ns)).toBe(before);
  });

  it('adds and removes single set elements incrementally', () => {
    const { ns, real } = setup();
    real.run(new Transaction().add(t).add(peers).add(svc).add(vm).add(polA));
    const elems = (name: string): unknown => byName(listJson(ns), name === 'vm' ? 'map' : 'set', name)?.elem;

    real.run(new Transaction().add(nft.setElement(t, 'peers', ['10.0.0.0/8'])));
    real.run(new Transaction().add(nft.setElement(t, 'peers', ['172.16.0.0/12'])));
    expect(elems('peers')).toEqual([{ prefix: { addr: '10.0.0.0', len: 8 } }, { prefix: { addr: '172.16.0.0', len: 12 } }]);
    real.run(new Transaction().delete(nft.setElement(t, 'peers', ['10.0.0.0/8'])));
    expect(elems('peers')).toEqual([{ prefix: { addr: '172.16.0.0', len: 12 } }]);

    real.run(new Transaction().add(nft.setElement(t, 'svc', ['10.1.2.3', 'tcp', '8000-8080'])));
    real.run(new Transaction().delete(nft.setElement(t, 'svc', ['10.1.2.3', 'tcp', '8000-8080'])));
    expect(elems('svc')).toBeUndefined();

    real.run(new Transaction().add(nft.mapElement(t, 'vm', ['10.0.0.9'], 'goto pol_a')));
    expect(elems('vm')).toEqual([['10.0.0.9', { goto: { target: 'pol_a' } }]]);

    // destroy: delete if present, no error if absent (twice in a row)
    const d = new Transaction().destroy(nft.mapElement(t, 'vm', ['10.0.0.9'], 'goto pol_a')).destroy(nft.setElement(t, 'peers', ['9.9.9.9/32']));
    real.run(d);
    real.run(d);
    expect(elems('vm')).toBeUndefined();

    expect(() => real.run(new Transaction().delete(nft.setElement(t, 'peers', ['9.9.9.9/32'])))).toThrow(expect.objectContaining({ errno: Errno.ENOENT }));
  });

  it('replaces a whole table in one call (add, delete, add): a concurrent reader never finds it missing', async () => {
    const { ns, real } = setup();
    real.run(fullTransaction());
    const replacement = (gen: number): Transaction =>
      new Transaction()
        .add(t)
        .delete(t)
        .add(t)
        .add(fwd)
        .add(nft.chain(t, `gen_${gen}`))
        .add(nft.rule(t, 'fwd_in', `jump gen_${gen}`));

    const stop = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'weir-nft-')), 'stop');
    scope.defer(() => fs.rmSync(path.dirname(stop), { recursive: true, force: true }));
    // Another process in the namespace lists the table as fast as it can until told to stop.
    const reader = spawn('ip', [
      'netns',
      'exec',
      ns.name,
      'sh',
      '-c',
      `while [ ! -e ${stop} ]; do if nft list table inet weir_test >/dev/null 2>&1; then echo ok; else echo MISSING; fi; done`,
    ]);
    let out = '';
    // The reader is running once it has printed its first verdict.
    const started = new Promise<void>((resolve) => reader.stdout.once('data', () => resolve()));
    reader.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<void>((resolve) => reader.on('close', () => resolve()));
    await started;

    const calls0 = real.calls;
    let gen = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) real.run(replacement(++gen));
    expect(real.calls - calls0).toBe(gen); // one libnftables call per replacement
    fs.writeFileSync(stop, '');
    await exited;

    const reads = out.split('\n').filter(Boolean);
    console.log(`table replacement: ${gen} replacements while a reader listed the table ${reads.length} times`);
    expect(reads.length).toBeGreaterThan(10);
    expect(reads.filter((l) => l !== 'ok')).toEqual([]);

    const objs = listJson(ns);
    expect(
      of(objs, 'chain')
        .map((c) => c.name)
        .sort(),
    ).toEqual(['fwd_in', `gen_${gen}`]);
    expect(of(objs, 'set')).toEqual([]);
    expect(of(objs, 'rule')).toHaveLength(1);
  });

  it('fails the common cases with the same errno as FakeNft', () => {
    const { ns, real } = setup();
    const fake = new FakeNft();
    const seed = (): Transaction =>
      fullTransaction()
        .add(nft.rule(t, 'fwd_in', 'ip saddr @peers jump pol_b'))
        .add(nft.set(t, 'konst', 'ipv4_addr', { flags: ['constant'] }))
        .add(nft.setElement(t, 'konst', ['1.1.1.1']))
        .add(nft.rule(t, 'pol_b', 'ip saddr @konst accept'))
        .add(nft.set(t, 'plain', 'ipv4_addr'))
        .add(nft.mapElement(t, 'vm', ['10.0.0.3'], 'accept'));
    const both: Nft[] = [real, fake];
    for (const b of both) b.run(seed());

    const cases: [string, Transaction, number][] = [
      ['create existing table', new Transaction().create(t), Errno.EEXIST],
      ['create existing chain', new Transaction().create(polA), Errno.EEXIST],
      ['create existing set', new Transaction().create(peers), Errno.EEXIST],
      ['create existing element', new Transaction().create(nft.setElement(t, 'peers', ['10.0.0.0/8'])), Errno.EEXIST],
      ['add set with other flags', new Transaction().add(nft.set(t, 'peers', 'ipv4_addr')), Errno.EEXIST],
      ['add set with other type', new Transaction().add(nft.set(t, 'plain', 'ipv6_addr')), Errno.EEXIST],
      ['add map over a set', new Transaction().add(nft.map(t, 'plain', 'ipv4_addr : verdict')), Errno.EEXIST],
      ['map element with another value', new Transaction().add(nft.mapElement(t, 'vm', ['10.0.0.3'], 'drop')), Errno.EEXIST],
      ['base chain over regular chain', new Transaction().add(nft.chain(t, 'pol_a', { type: 'filter', hook: 'input', priority: 0 })), Errno.EEXIST],
      ['base chain with another priority', new Transaction().add({ ...fwd, priority: 10 }), Errno.EOPNOTSUPP],
      ['chain in missing table', new Transaction().add(nft.chain(nft.table('inet', 'nope'), 'c')), Errno.ENOENT],
      ['rule in missing chain', new Transaction().add(nft.rule(t, 'nope', 'accept')), Errno.ENOENT],
      ['rule with missing set', new Transaction().add(nft.rule(t, 'pol_a', 'ip saddr @nope accept')), Errno.ENOENT],
      ['rule jumping to missing chain', new Transaction().add(nft.rule(t, 'pol_a', 'jump nope')), Errno.ENOENT],
      ['verdict to missing chain', new Transaction().add(nft.mapElement(t, 'vm', ['10.9.9.9'], 'goto nope')), Errno.ENOENT],
      ['element of missing set', new Transaction().add(nft.setElement(t, 'nope', ['1.1.1.1'])), Errno.ENOENT],
      ['delete missing table', new Transaction().delete(nft.table('inet', 'nope')), Errno.ENOENT],
      ['delete missing chain', new Transaction().delete(nft.chain(t, 'nope')), Errno.ENOENT],
      ['delete missing set', new Transaction().delete(nft.set(t, 'nope', 'ipv4_addr')), Errno.ENOENT],
      ['delete missing element', new Transaction().delete(nft.setElement(t, 'plain', ['9.9.9.9'])), Errno.ENOENT],
      ['delete missing interval element', new Transaction().delete(nft.setElement(t, 'peers', ['9.9.9.0/24'])), Errno.ENOENT],
      ['delete missing rule handle', new Transaction().delete(nft.rule(t, 'pol_a', '', { handle: 9999 })), Errno.ENOENT],
      ['replace missing rule handle', new Transaction().replace(nft.rule(t, 'pol_a', 'accept', { handle: 9999 })), Errno.ENOENT],
      ['delete chain jumped to by a rule', new Transaction().delete(polB), Errno.EBUSY],
      ['delete chain targeted by a verdict map', new Transaction().delete(polA), Errno.EBUSY],
      ['delete set used by a rule', new Transaction().delete(peers), Errno.EBUSY],
      ['element into a constant set in use', new Transaction().add(nft.setElement(t, 'konst', ['2.2.2.2'])), Errno.EBUSY],
      ['flush of a constant set in use', new Transaction().flush(nft.set(t, 'konst', '')), Errno.EBUSY],
      ['destroy chain in a missing table', new Transaction().destroy(nft.chain(nft.table('inet', 'nope'), 'c')), Errno.ENOENT],
    ];
    const before = listText(ns);
    for (const [name, x, errno] of cases) {
      for (const b of both) {
        const e = thrown(() => b.run(x));
        expect(e.errno, `${b.constructor.name}: ${name}: ${e.message}`).toBe(errno);
        expect(e.line, `${b.constructor.name}: ${name}: line`).toBe(1);
      }
    }
    expect(listText(ns)).toBe(before);

    // And the successes: add of what exists is a no-op, destroy is idempotent, a chain goes with its own rules.
    const ok = new Transaction()
      .add(t)
      .add(polA)
      .add(fwd)
      .add(peers)
      .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
      .destroy(nft.table('inet', 'gone'))
      .destroy(nft.chain(t, 'never'))
      .destroy(nft.set(t, 'never', 'ipv4_addr'))
      .add(nft.chain(t, 'tmp'))
      .add(nft.rule(t, 'tmp', 'counter'))
      .delete(nft.chain(t, 'tmp'));
    for (const b of both) b.run(ok);
    expect(listText(ns)).toBe(before);
  });

  it('measures a 5,000-element transaction and a single element add', () => {
    const { ns, real } = setup();
    const hs = nft.set(t, 'hs', 'ipv4_addr');
    const iv = nft.set(t, 'iv', 'ipv4_addr', { flags: ['interval'] });
    real.run(new Transaction().add(t).add(hs).add(iv).add(svc));
    const ips = Array.from({ length: 5000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const ms = (fn: () => void): number => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    /** Median of 21 single-element transactions into `set`. */
    let n = 0;
    const single = (set: string): string => {
      const xs = Array.from({ length: 21 }, () => ms(() => real.run(new Transaction().add(nft.setElement(t, set, [`11.0.${n >> 8}.${n++ & 255}`])))));
      xs.sort((a, b) => a - b);
      return `${(xs[10] ?? 0).toFixed(2)} ms`;
    };
    const many = (set: string, key: (ip: string, i: number) => string[]): { tx: Transaction; queueMs: number } => {
      const tx = new Transaction();
      const queueMs = ms(() => {
        for (const [i, ip] of ips.entries()) tx.add(nft.setElement(t, set, key(ip, i)));
      });
      return { tx, queueMs };
    };

    const singleEmpty = single('hs');
    const dels = Array.from({ length: 21 }, (_, k) => ms(() => real.run(new Transaction().delete(nft.setElement(t, 'hs', [`11.0.0.${k}`])))));
    dels.sort((a, b) => a - b);
    const singleDelete = `${(dels[10] ?? 0).toFixed(2)} ms`;
    const h = many('hs', (ip) => [ip]);
    let script = '';
    const renderMs = ms(() => (script = h.tx.render()));
    const hashMs = ms(() => real.run(h.tx));
    const singleAfterHash = single('hs');
    const i = many('iv', (ip) => [ip]);
    const intervalMs = ms(() => real.run(i.tx));
    const c = many('svc', (ip, k) => [ip, k % 2 ? 'tcp' : 'udp', `${1000 + (k % 50)}-${2000 + (k % 50)}`]);
    const concatMs = ms(() => real.run(c.tx));
    const singleAfterInterval = single('hs');
    const singleIntoInterval = single('iv');
    const ruleMs = ms(() => real.run(new Transaction().add(nft.chain(t, 'c')).add(nft.rule(t, 'c', 'counter'))));

    console.log(
      [
        'nft timings (libnftables 1.0.6, one transaction each):',
        `  5,000 elements: queue+validate ${h.queueMs.toFixed(1)} ms, render ${renderMs.toFixed(1)} ms (${script.length} bytes, ${script.split('\n').length - 1} command)`,
        `  apply 5,000 ipv4_addr elements into a hash set: ${hashMs.toFixed(1)} ms`,
        `  apply 5,000 ipv4_addr elements into an interval set: ${intervalMs.toFixed(1)} ms`,
        `  apply 5,000 ipv4_addr . inet_proto . inet_service(range) elements into an interval set: ${concatMs.toFixed(1)} ms`,
        `  single element delete (median of 21, kept context): ${singleDelete}`,
        `  single element add (median of 21): empty netns ${singleEmpty}; with 5,000 in a hash set ${singleAfterHash}; ` +
          `with 10,000 in interval sets: into the hash set ${singleAfterInterval}, into the interval set ${singleIntoInterval}`,
        `  chain + rule add with 10,000 interval elements present: ${ruleMs.toFixed(2)} ms`,
      ].join('\n'),
    );
    const count = (name: string): number | undefined => (byName(listJson(ns), 'set', name)?.elem as unknown[] | undefined)?.length;
    expect(count('hs')).toBe(5000 + 2 * 21);
    expect(count('iv')).toBe(5000 + 21); // adjacent /32s stay apart: no auto-merge
    expect(count('svc')).toBe(5000);
  });

  it('opens the context inside the namespace: the caller namespace sees nothing', () => {
    const a = setup('a');
    const b = setup('b');
    a.real.run(new Transaction().add(t));
    expect(a.real.list('inet', 'weir_test')).toMatch(/^table inet weir_test/);
    expect(() => b.real.list('inet', 'weir_test')).toThrow(expect.objectContaining({ errno: Errno.ENOENT }));
    expect(hasTable(b.ns)).toBe(false);
    // list() takes a family and a name, never a second command.
    expect(() => a.real.list('inet', 'weir_test; flush ruleset')).toThrow(expect.objectContaining({ errno: Errno.EINVAL }));
    expect(hasTable(a.ns)).toBe(true);
    // The thread is back in its own namespace after every call.
    expect(fs.readlinkSync('/proc/thread-self/ns/net')).toBe(fs.readlinkSync('/proc/self/ns/net'));
  });
});
