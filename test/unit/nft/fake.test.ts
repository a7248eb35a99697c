// FakeNft: the in-memory backend that unit tests of the policy compiler use.
// Its errors (errno) are the kernel's for the common cases; the kernel test
// (test/kernel/nft.test.ts) checks the same cases against the real thing.
import { beforeEach, describe, expect, it } from 'vitest';
import { Errno } from '../../../src/errors.ts';
import type { Nft } from '../../../src/nft/index.ts';
import { FakeNft, isNftBusy, isNftExists, isNftNotFound, LibNftables, NftError, nft, Transaction } from '../../../src/nft/index.ts';

// Compile-time: both backends are interchangeable behind Nft.
const backends = [FakeNft, LibNftables] satisfies (new () => Nft)[];
void backends;

const t = nft.table('inet', 'weir');
const fwd = nft.chain(t, 'fwd_in', { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' });
const polA = nft.chain(t, 'pol_a');
const peers = nft.set(t, 'peers', 'ipv4_addr', { flags: ['interval'] });
const svc = nft.set(t, 'svc', 'ipv4_addr . inet_proto . inet_service', { flags: ['interval'] });
const vm = nft.map(t, 'vm', 'ipv4_addr : verdict');

let f: FakeNft;
beforeEach(() => {
  f = new FakeNft();
});

const tx = (): Transaction => new Transaction();
function base(): void {
  f.run(tx().add(t).add(fwd).add(polA).add(peers).add(svc).add(vm));
}
/** Runs and returns the NftError (failing the test if none). */
function failure(x: Transaction, backend: FakeNft = f): NftError {
  try {
    backend.run(x);
  } catch (e) {
    expect(e).toBeInstanceOf(NftError);
    return e as NftError;
  }
  throw new Error('expected the transaction to fail');
}

describe('applying and dumping', () => {
  it('dumps a sorted, replayable script: table, chains, sets and maps, elements, rules', () => {
    f.run(
      tx()
        .add(nft.table('inet', 'weir', { comment: 'weir policy' }))
        .add(polA)
        .add(fwd)
        .add(vm)
        .add(peers)
        .add(nft.setElement(t, 'peers', ['192.168.0.0/16']))
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8'], { comment: 'ten' }))
        .add(nft.mapElement(t, 'vm', ['10.0.0.1'], 'goto pol_a'))
        .add(nft.rule(t, 'fwd_in', 'ip daddr vmap @vm'))
        .add(nft.rule(t, 'pol_a', 'ip saddr @peers counter accept', { comment: 'peers' }))
        .add(nft.rule(t, 'fwd_in', 'counter drop'))
        .add(nft.table('ip', 'aaa')),
    );
    expect(f.dump()).toBe(
      [
        'add table inet weir { comment "weir policy" ; }',
        'add chain inet weir fwd_in { type filter hook forward priority 0 ; policy accept ; }',
        'add chain inet weir pol_a',
        'add set inet weir peers { type ipv4_addr ; flags interval ; }',
        'add map inet weir vm { type ipv4_addr : verdict ; }',
        'add element inet weir peers { 10.0.0.0/8 comment "ten" }',
        'add element inet weir peers { 192.168.0.0/16 }',
        'add element inet weir vm { 10.0.0.1 : goto pol_a }',
        'add rule inet weir fwd_in ip daddr vmap @vm',
        'add rule inet weir fwd_in counter drop',
        'add rule inet weir pol_a ip saddr @peers counter accept comment "peers"',
        'add table ip aaa',
        '',
      ].join('\n'),
    );
    expect(f.list('ip', 'aaa')).toBe('add table ip aaa\n');
    expect(f.hasTable('inet', 'weir')).toBe(true);
  });

  it('dumps the same text whatever the order things were added in', () => {
    const g = new FakeNft();
    f.run(
      tx()
        .add(t)
        .add(peers)
        .add(nft.setElement(t, 'peers', ['1.1.1.1']))
        .add(nft.setElement(t, 'peers', ['2.2.2.2']))
        .add(polA),
    );
    g.run(
      tx()
        .add(t)
        .add(polA)
        .add(peers)
        .add(nft.setElement(t, 'peers', ['2.2.2.2'])),
    );
    g.run(tx().add(nft.setElement(t, 'peers', ['1.1.1.1'])));
    expect(g.dump()).toBe(f.dump());
  });

  it('an empty ruleset dumps to nothing; list of a missing table is ENOENT', () => {
    expect(f.dump()).toBe('');
    expect(() => f.list('inet', 'nope')).toThrow(expect.objectContaining({ errno: Errno.ENOENT }));
  });

  it('counts one call per transaction; an empty or invalid transaction makes none', () => {
    base();
    f.run(tx());
    expect(() => f.run(tx().add(nft.chain(t, 'ct')))).toThrow(/is an nft keyword/);
    expect(f.calls).toBe(1);
  });
});

describe('all or nothing', () => {
  it('a failing operation in the middle leaves the ruleset exactly as it was', () => {
    base();
    f.run(
      tx()
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
        .add(nft.rule(t, 'fwd_in', 'counter')),
    );
    const before = f.dump();
    const e = failure(
      tx()
        .add(nft.chain(t, 'pol_b'))
        .add(nft.setElement(t, 'peers', ['172.16.0.0/12']))
        .flush(peers)
        .add(nft.rule(t, 'pol_b', 'jump nowhere'))
        .add(nft.chain(t, 'pol_c')),
    );
    expect(e.errno).toBe(Errno.ENOENT);
    expect(e.op).toBe(3);
    expect(e.line).toBe(4);
    expect(e.command).toBe('add rule inet weir pol_b jump nowhere');
    expect(e.message).toMatch(/^nft transaction failed, nothing applied: Could not process rule: No such file or directory: jump\/goto target chain nowhere/);
    expect(f.dump()).toBe(before);
  });

  it('a transaction refused by validation applies nothing', () => {
    base();
    const before = f.dump();
    expect(() =>
      f.run(
        tx()
          .add(nft.chain(t, 'ok'))
          .add(nft.rule(t, 'ok', 'accept; flush ruleset')),
      ),
    ).toThrow(expect.objectContaining({ errno: Errno.EINVAL, op: 1 }));
    expect(f.dump()).toBe(before);
  });

  it('check() finds the same errors and never changes anything', () => {
    base();
    const before = f.dump();
    expect(() =>
      f.check(
        tx()
          .add(nft.chain(t, 'pol_b'))
          .add(nft.rule(t, 'pol_b', 'counter')),
      ),
    ).not.toThrow();
    expect(f.dump()).toBe(before);
    expect(() => f.check(tx().create(polA))).toThrow(/^nft check failed: .*File exists/);
  });

  it('replaces a whole table in one transaction (add, delete, add)', () => {
    base();
    f.run(
      tx()
        .add(nft.rule(t, 'fwd_in', 'counter'))
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8'])),
    );
    f.run(tx().add(t).delete(t).add(t).add(nft.chain(t, 'fresh')));
    expect(f.dump()).toBe('add table inet weir\nadd chain inet weir fresh\n');
  });
});

describe('kernel errors for the common cases', () => {
  it('ENOENT: objects in a missing table or chain, and deletes of missing objects', () => {
    expect(failure(tx().add(polA)).errno).toBe(Errno.ENOENT);
    base();
    const notFound = [
      tx().add(nft.rule(t, 'nope', 'accept')),
      tx().add(nft.rule(t, 'fwd_in', 'ip saddr @nope accept')),
      tx().add(nft.rule(t, 'fwd_in', 'ip daddr vmap { 1.1.1.1 : goto nope }')),
      tx().add(nft.setElement(t, 'nope', ['1.1.1.1'])),
      tx().add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto nope')),
      tx().delete(nft.table('inet', 'nope')),
      tx().delete(nft.chain(t, 'nope')),
      tx().flush(nft.chain(t, 'nope')),
      tx().delete(nft.set(t, 'nope', 'ipv4_addr')),
      tx().delete(nft.map(t, 'peers', 'ipv4_addr : verdict')),
      tx().delete(nft.setElement(t, 'peers', ['9.9.9.9'])),
      tx().delete(nft.rule(t, 'fwd_in', '', { handle: 999 })),
      tx().replace(nft.rule(t, 'fwd_in', 'accept', { handle: 999 })),
      tx().add(nft.rule(t, 'fwd_in', 'accept', { handle: 999 })),
    ];
    for (const x of notFound) {
      const e = failure(x);
      expect(isNftNotFound(e), `${x.render()} -> ${e.message}`).toBe(true);
    }
  });

  it('EEXIST: create of what exists, conflicting set/map definitions, a map element with another value', () => {
    base();
    f.run(
      tx()
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
        .add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'accept')),
    );
    const exists = [
      tx().create(t),
      tx().create(polA),
      tx().create(peers),
      tx().create(nft.setElement(t, 'peers', ['10.0.0.0/8'])),
      tx().add(nft.set(t, 'peers', 'ipv6_addr', { flags: ['interval'] })),
      tx().add(nft.set(t, 'peers', 'ipv4_addr')),
      tx().add(nft.map(t, 'peers', 'ipv4_addr : verdict')),
      tx().add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'drop')),
      tx().add(nft.chain(t, 'pol_a', { type: 'filter', hook: 'input', priority: 0 })),
    ];
    for (const x of exists) {
      const e = failure(x);
      expect(isNftExists(e), `${x.render()} -> ${e.message}`).toBe(true);
    }
    // ...but add of the same thing again is a no-op
    const before = f.dump();
    f.run(
      tx()
        .add(t)
        .add(polA)
        .add(fwd)
        .add(peers)
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
        .add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'accept')),
    );
    expect(f.dump()).toBe(before);
  });

  it('EBUSY: deleting a chain that is jumped to, or a set a rule uses', () => {
    base();
    f.run(tx().add(nft.rule(t, 'fwd_in', 'ip saddr @peers jump pol_a')));
    expect(isNftBusy(failure(tx().delete(polA)))).toBe(true);
    expect(isNftBusy(failure(tx().delete(peers)))).toBe(true);
    f.run(
      tx()
        .flush(fwd)
        .add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto pol_a')),
    );
    expect(failure(tx().delete(polA)).message).toMatch(/Device or resource busy: chain pol_a is still the target of element 1\.1\.1\.1 of map vm/);
    // rules of the chain itself go with it
    f.run(
      tx()
        .flush(vm)
        .add(nft.rule(t, 'pol_a', 'counter'))
        .delete(polA),
    );
    expect(f.rules(t, 'pol_a')).toBeUndefined();
  });

  it('EOPNOTSUPP: a base chain re-added with another hook or priority; a policy change is fine', () => {
    base();
    expect(failure(tx().add({ ...fwd, priority: 10 })).errno).toBe(Errno.EOPNOTSUPP);
    expect(failure(tx().add({ ...fwd, hook: 'input' })).errno).toBe(Errno.EOPNOTSUPP);
    f.run(tx().add({ ...fwd, policy: 'drop' }));
    expect(f.list('inet', 'weir')).toContain('policy drop ;');
    f.run(tx().add(nft.chain(t, 'fwd_in')));
    expect(f.list('inet', 'weir')).toContain('add chain inet weir fwd_in { type filter hook forward priority 0 ; policy drop ; }');
  });

  it('EINVAL: element arity or kind that does not fit the set', () => {
    base();
    expect(failure(tx().add(nft.setElement(t, 'svc', ['1.1.1.1', 'tcp']))).errno).toBe(Errno.EINVAL);
    expect(failure(tx().add(nft.setElement(t, 'vm', ['1.1.1.1']))).errno).toBe(Errno.EINVAL);
    expect(failure(tx().add(nft.mapElement(t, 'peers', ['1.1.1.1'], 'accept'))).errno).toBe(Errno.EINVAL);
  });

  it('EBUSY: the elements of a constant set are frozen once a rule uses it', () => {
    base();
    const c = nft.set(t, 'c', 'ipv4_addr', { flags: ['constant'] });
    f.run(
      tx()
        .add(c)
        .add(nft.setElement(t, 'c', ['1.1.1.1'])),
    );
    f.run(tx().add(nft.setElement(t, 'c', ['2.2.2.2']))); // not used yet: still open
    f.run(tx().add(nft.rule(t, 'pol_a', 'ip saddr @c accept')));
    expect(failure(tx().add(nft.setElement(t, 'c', ['3.3.3.3']))).errno).toBe(Errno.EBUSY);
    expect(failure(tx().delete(nft.setElement(t, 'c', ['1.1.1.1']))).errno).toBe(Errno.EBUSY);
    expect(failure(tx().flush(c)).errno).toBe(Errno.EBUSY);
    expect(f.elements(t, 'c')).toEqual([{ key: ['1.1.1.1'] }, { key: ['2.2.2.2'] }]);
  });
});

describe('rules and handles', () => {
  it('numbers chains, sets and rules of a table from one counter, as the kernel does', () => {
    base(); // chains 1-2, sets 3-5
    f.run(tx().add(nft.rule(t, 'pol_a', 'counter', { comment: 'A' })));
    expect(f.rules(t, 'pol_a')).toEqual([{ handle: 6, rule: 'counter', comment: 'A' }]);
  });

  it('add after a handle, insert before it or at the top, replace in place, delete', () => {
    base();
    f.run(tx().add(nft.rule(t, 'pol_a', 'counter', { comment: 'A' })));
    const [a] = f.rules(t, 'pol_a') ?? [];
    const h = a?.handle as number;
    f.run(
      tx()
        .add(nft.rule(t, 'pol_a', 'counter', { comment: 'after-A', handle: h }))
        .insert(nft.rule(t, 'pol_a', 'counter', { comment: 'before-A', handle: h }))
        .insert(nft.rule(t, 'pol_a', 'counter', { comment: 'first' }))
        .replace(nft.rule(t, 'pol_a', 'counter', { comment: 'A2', handle: h })),
    );
    expect(f.rules(t, 'pol_a')?.map((r) => `${r.handle}:${r.comment}`)).toEqual(['9:first', '8:before-A', '6:A2', '7:after-A']);
    f.run(tx().delete(nft.rule(t, 'pol_a', '', { handle: 8 })));
    expect(f.rules(t, 'pol_a')?.map((r) => r.comment)).toEqual(['first', 'A2', 'after-A']);
  });

  it('flush table empties every chain but keeps set elements; flush set empties the set', () => {
    base();
    f.run(
      tx()
        .add(nft.rule(t, 'fwd_in', 'counter'))
        .add(nft.rule(t, 'pol_a', 'counter'))
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8'])),
    );
    f.run(tx().flush(t));
    expect(f.rules(t, 'fwd_in')).toEqual([]);
    expect(f.rules(t, 'pol_a')).toEqual([]);
    expect(f.elements(t, 'peers')).toEqual([{ key: ['10.0.0.0/8'] }]);
    f.run(tx().flush(peers));
    expect(f.elements(t, 'peers')).toEqual([]);
  });
});

describe('elements', () => {
  it('adds and removes single elements incrementally, keys compared part by part', () => {
    base();
    f.run(tx().add(nft.setElement(t, 'svc', ['10.1.2.3', 'tcp', '80-90'], { comment: 'web' })));
    f.run(tx().add(nft.setElement(t, 'svc', ['10.1.2.4', 'udp', '53'])));
    f.run(tx().delete(nft.setElement(t, 'svc', ['10.1.2.3', 'tcp', '80-90'])));
    expect(f.elements(t, 'svc')).toEqual([{ key: ['10.1.2.4', 'udp', '53'] }]);
    expect(f.elements(t, 'nope')).toBeUndefined();
  });

  it('destroy is idempotent: removes what exists, and a missing element is no error', () => {
    base();
    f.run(
      tx()
        .add(nft.setElement(t, 'peers', ['10.0.0.0/8']))
        .add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto pol_a')),
    );
    const d = tx()
      .destroy(nft.setElement(t, 'peers', ['10.0.0.0/8']))
      .destroy(nft.setElement(t, 'peers', ['11.0.0.0/8']))
      .destroy(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto pol_a'));
    f.run(d);
    f.run(d);
    expect(f.elements(t, 'peers')).toEqual([]);
    expect(f.elements(t, 'vm')).toEqual([]);
  });

  it('destroy of a map element with another value than the current one fails, as in the kernel', () => {
    base();
    f.run(tx().add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'accept')));
    expect(failure(tx().destroy(nft.mapElement(t, 'vm', ['1.1.1.1'], 'drop'))).errno).toBe(Errno.EEXIST);
  });
});

describe('destroy of tables, chains and sets', () => {
  it('is idempotent, and leaves nothing behind', () => {
    const d = tx().destroy(nft.table('inet', 'gone'));
    f.run(d);
    f.run(d);
    expect(f.dump()).toBe('');
    base();
    const d2 = tx()
      .destroy(polA)
      .destroy(peers)
      .destroy(nft.chain(t, 'never'))
      .destroy(nft.set(t, 'never', 'ipv4_addr'));
    f.run(d2);
    f.run(d2);
    expect(f.dump()).not.toMatch(/pol_a|peers|never/);
  });
  it('of a chain or set inside a missing table fails (ENOENT): the emulation cannot skip the table', () => {
    expect(failure(tx().destroy(polA)).errno).toBe(Errno.ENOENT);
  });
  it('of a set with other flags than the existing one fails (EEXIST)', () => {
    base();
    expect(failure(tx().destroy(nft.set(t, 'peers', 'ipv4_addr'))).errno).toBe(Errno.EEXIST);
  });
});
