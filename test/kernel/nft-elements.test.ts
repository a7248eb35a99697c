// NetlinkElementWriter against the real kernel (6.18): element adds and
// deletes written over netlink, read back through libnftables' JSON listing.
// Needs root.
//
// Everything happens in one namespace this file creates (removed in afterAll,
// also when a test fails); the table is made with LibNftables inside it, and
// afterAll checks that the root namespace's tables are what they were.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Errno } from '../../src/errors.ts';
import type { ElementChange } from '../../src/nft/element-writer.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { encodeChanges, NetlinkElementWriter } from '../../src/nft/netlink-elements.ts';
import { nft, Transaction } from '../../src/nft/transaction.ts';
import type { NftMap } from '../../src/nft/types.ts';
import { Netns } from '../../src/sys/netns.ts';
import { createNetns, sh, sweepLeakedNetns, type TestNetns } from '../helpers/netns.ts';
import { elementSets, elemText } from '../helpers/nft-sets.ts';

const t = nft.table('inet', 'weirt');
const sets = elementSets(t);
type SetName = keyof typeof sets;
/** Matches the NftError apply() throws. */
const nftError = (fields: Record<string, unknown>) => expect.objectContaining({ name: 'NftError', ...fields });
const ranged = nft.set(t, 'ranged', 'ipv4_addr', { flags: ['interval'] });

const add = (set: SetName, key: string[], value?: string): ElementChange => ({ verb: 'add', set: sets[set], key, ...(value === undefined ? {} : { value }) });
const del = (set: SetName, key: string[]): ElementChange => ({ verb: 'delete', set: sets[set], key });

describe('NetlinkElementWriter in a test namespace', () => {
  let ns: TestNetns | undefined;
  let netns: Netns | undefined;
  let lib: LibNftables;
  let writer: NetlinkElementWriter;
  let rootTables = '';

  /** Every set's and map's elements, sorted, as nft text. */
  function contents(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const obj of lib.listJson('inet', 'weirt').nftables) {
      const s = (obj.set ?? obj.map) as { name: string; elem?: unknown[] } | undefined;
      if (s) out[s.name] = (s.elem ?? []).map(elemText).sort();
    }
    return out;
  }
  const empty = (): Record<string, string[]> => ({ ...Object.fromEntries(Object.keys(sets).map((k) => [k, []])), ranged: [] });

  beforeAll(() => {
    rootTables = sh('nft', ['list', 'tables']); // read only
    sweepLeakedNetns('nftel');
    ns = createNetns('nftel');
    netns = Netns.open(ns.path);
    ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    lib = new LibNftables({ netns });
    const tx = new Transaction().add(t).add(nft.chain(t, 'prof_a')).add(nft.chain(t, 'prof_b'));
    for (const s of [...Object.values(sets), ranged]) tx.add(s);
    // Packets to an address in m4 take its verdict; prof_a drops them.
    tx.add(nft.chain(t, 'out', { type: 'filter', hook: 'output', priority: 'filter', policy: 'accept' }))
      .add(nft.rule(t, 'out', 'ip daddr vmap @m4'))
      .add(nft.rule(t, 'prof_a', 'counter drop'));
    lib.run(tx);
    writer = NetlinkElementWriter.open(ns.path);
  });

  afterAll(() => {
    // Each step on its own: a failure in one must not leave the namespace behind.
    const steps = [() => writer?.close(), () => lib?.close(), () => netns?.close(), () => ns?.destroy()];
    const errors: unknown[] = [];
    for (const step of steps) {
      try {
        step();
      } catch (e) {
        errors.push(e);
      }
    }
    expect(sh('nft', ['list', 'tables'])).toBe(rootTables);
    if (errors.length > 0) throw errors[0];
  });

  beforeEach(() => {
    const tx = new Transaction();
    for (const s of Object.values(sets)) tx.flush(s);
    lib.run(tx);
  });

  it('adds and deletes elements of every supported type; the kernel holds exactly them', () => {
    writer.apply([
      add('s4', ['10.244.1.5']),
      add('s4', ['10.244.1.6']),
      add('s6', ['fd00::5']),
      add('s6', ['2001:db8::1']),
      add('c4', ['10.244.1.5', 'tcp', '8080']),
      add('c4', ['10.244.1.5', 'udp', '53']),
      add('c4', ['10.244.1.6', 'sctp', '9']),
      add('c6', ['fd00::5', 'tcp', '443']),
      add('c6', ['fd00::5', 'icmpv6', '0']),
      add('pp', ['tcp', '80']),
      add('pp', ['17', '65535']),
      add('p', ['icmp']),
      add('p', ['132']),
      add('sv', ['0']),
      add('sv', ['8080']),
      add('m4', ['10.244.1.5'], 'goto prof_a'),
      add('m4', ['10.244.1.6'], 'accept'),
      add('m6', ['fd00::5'], 'jump prof_b'),
      add('m6', ['fd00::6'], 'drop'),
    ]);
    expect(contents()).toEqual({
      ...empty(),
      s4: ['10.244.1.5', '10.244.1.6'],
      s6: ['2001:db8::1', 'fd00::5'],
      c4: ['10.244.1.5 . tcp . 8080', '10.244.1.5 . udp . 53', '10.244.1.6 . sctp . 9'],
      c6: ['fd00::5 . ipv6-icmp . 0', 'fd00::5 . tcp . 443'],
      pp: ['tcp . 80', 'udp . 65535'],
      p: ['icmp', 'sctp'],
      sv: ['0', '8080'],
      m4: ['10.244.1.5 : goto prof_a', '10.244.1.6 : accept'],
      m6: ['fd00::5 : jump prof_b', 'fd00::6 : drop'],
    });

    // A map element goes by its key alone.
    writer.apply([
      del('s4', ['10.244.1.5']),
      del('c4', ['10.244.1.5', 'udp', '53']),
      del('c6', ['fd00::5', 'ipv6-icmp', '0']),
      del('p', ['sctp']),
      del('sv', ['8080']),
      del('m4', ['10.244.1.5']),
      del('m6', ['fd00::6']),
    ]);
    expect(contents()).toEqual({
      ...empty(),
      s4: ['10.244.1.6'],
      s6: ['2001:db8::1', 'fd00::5'],
      c4: ['10.244.1.5 . tcp . 8080', '10.244.1.6 . sctp . 9'],
      c6: ['fd00::5 . tcp . 443'],
      pp: ['tcp . 80', 'udp . 65535'],
      p: ['icmp'],
      sv: ['0'],
      m4: ['10.244.1.6 : accept'],
      m6: ['fd00::5 : jump prof_b'],
    });
  });

  it("stores a map element's verdict as nft -j lists it", () => {
    writer.apply([add('m4', ['10.244.2.1'], 'goto prof_b')]);
    const m4 = lib.listJson('inet', 'weirt').nftables.find((o) => (o.map as NftMap | undefined)?.name === 'm4')?.map;
    expect(m4).toMatchObject({ type: 'ipv4_addr', map: 'verdict', elem: [['10.244.2.1', { goto: { target: 'prof_b' } }]] });
  });

  it('re-adding an existing element is no error (NLM_F_CREATE without NLM_F_EXCL), as with nft add element; another verdict is', () => {
    writer.apply([add('s4', ['10.244.3.1']), add('m4', ['10.244.3.1'], 'goto prof_a')]);
    writer.apply([add('s4', ['10.244.3.1']), add('m4', ['10.244.3.1'], 'goto prof_a')]);
    expect(contents()).toMatchObject({ s4: ['10.244.3.1'], m4: ['10.244.3.1 : goto prof_a'] });
    // Another verdict for the same key is a clash; a delete and an add in one batch replace it.
    expect(() => writer.apply([add('m4', ['10.244.3.1'], 'accept')])).toThrow(nftError({ errno: Errno.EEXIST }));
    writer.apply([del('m4', ['10.244.3.1']), add('m4', ['10.244.3.1'], 'accept')]);
    expect(contents()).toMatchObject({ m4: ['10.244.3.1 : accept'] });
  });

  it('a batch whose second change fails commits nothing and names the set and element', () => {
    writer.apply([add('s4', ['10.244.4.1']), add('m4', ['10.244.4.1'], 'accept')]);
    const before = contents();
    const batch = [
      add('c4', ['10.244.4.1', 'tcp', '80']),
      del('s6', ['fd00::dead']), // absent
      del('s4', ['10.244.4.1']),
      add('m4', ['10.244.4.2'], 'goto prof_a'),
    ];
    expect(() => writer.apply(batch)).toThrow(
      nftError({
        errno: Errno.ENOENT,
        op: 1,
        command: 'delete element inet weirt s6 { fd00::dead }',
        message: expect.stringMatching(/nothing applied: delete element inet weirt s6 \{ fd00::dead \}: ENOENT/),
      }),
    );
    expect(contents()).toEqual(before);

    // Within one message too: the element before the absent one is not deleted.
    expect(() => writer.apply([del('s4', ['10.244.4.1']), del('s4', ['10.244.4.9'])])).toThrow(
      nftError({ errno: Errno.ENOENT, op: 1, command: 'delete element inet weirt s4 { 10.244.4.9 }' }),
    );
    expect(contents()).toEqual(before);

    // The writer goes on: replies of the failed batch left queued are skipped.
    writer.apply([del('s4', ['10.244.4.1'])]);
    expect(contents().s4).toEqual([]);
  });

  it('a set that does not exist fails the batch with ENOENT naming the set', () => {
    const nope = nft.set(t, 'nope', 'ipv4_addr');
    expect(() => writer.apply([add('s4', ['10.244.5.1']), { verb: 'add', set: nope, key: ['10.244.5.1'] }])).toThrow(
      nftError({ errno: Errno.ENOENT, message: expect.stringMatching(/set inet weirt nope/) }),
    );
    expect(contents().s4).toEqual([]);
  });

  it('refuses a change it cannot encode before sending anything', () => {
    expect(writer.canWrite(sets.c4)).toBe(true);
    expect(writer.canWrite(ranged)).toBe(false);
    expect(() => writer.apply([add('s4', ['10.244.6.1']), { verb: 'add', set: ranged, key: ['10.0.0.0/8'] }])).toThrow(
      nftError({ errno: Errno.EINVAL, op: 1 }),
    );
    expect(() => writer.apply([add('c4', ['10.244.6.1', 'tcp', '70000'])])).toThrow(nftError({ errno: Errno.EINVAL }));
    expect(contents()).toEqual(empty());
  });

  it('splits a batch of 20,000 elements into several messages, and it lands whole', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => [
      `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      i % 2 ? 'udp' : 'tcp',
      String(1024 + (i % 1000)),
    ]);
    const adds = keys.map((k) => add('c4', k));
    expect(encodeChanges(adds).messages.length).toBeGreaterThan(1);
    writer.apply(adds);
    const want = keys.map((k) => k.join(' . ')).sort();
    expect(contents().c4).toEqual(want);

    // One absent element at the very end undoes the whole large batch.
    const dels = keys.map((k) => del('c4', k));
    expect(() => writer.apply([...dels, del('c4', ['10.99.0.1', 'tcp', '1'])])).toThrow(nftError({ errno: Errno.ENOENT, op: dels.length }));
    expect(contents().c4).toHaveLength(20_000);

    writer.apply(dels);
    expect(contents().c4).toEqual([]);
  });

  it('takes effect on packets: a goto in m4 drops traffic to that address, its delete lets it through', () => {
    // TCP to a closed port on lo: refused when it passes, no answer when prof_a drops the SYN.
    const connect = (ip: string): string => {
      const js = `const s=require('net').connect(9,'${ip}');s.on('error',e=>{console.log(e.code);process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});setTimeout(()=>{console.log('timeout');process.exit(0)},500)`;
      const r = spawnSync('ip', ['netns', 'exec', ns?.name ?? '', process.execPath, '-e', js], { encoding: 'utf8', timeout: 10_000 });
      return r.stdout.trim();
    };
    expect(connect('127.0.0.5')).toBe('ECONNREFUSED');
    writer.apply([add('m4', ['127.0.0.5'], 'goto prof_a')]);
    expect(connect('127.0.0.5')).toBe('timeout');
    expect(connect('127.0.0.6')).toBe('ECONNREFUSED');
    writer.apply([del('m4', ['127.0.0.5'])]);
    expect(connect('127.0.0.5')).toBe('ECONNREFUSED');
  });

  it('opens by a Netns as well as by path, and a closed writer refuses to apply', () => {
    const w = NetlinkElementWriter.open(netns);
    w.apply([add('s4', ['10.244.7.1'])]);
    w.close();
    expect(() => w.apply([add('s4', ['10.244.7.2'])])).toThrow(nftError({ errno: Errno.EBADF }));
    expect(contents().s4).toEqual(['10.244.7.1']);
  });
});
