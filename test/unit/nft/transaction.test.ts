// Transaction rendering (pure): every object kind and verb, quoting, the
// destroy emulation, merging of element runs, deterministic output, and
// validation errors that surface at render()/compile(), never at add().
import { describe, expect, it } from 'vitest';
import { Errno } from '../../../src/errors.ts';
import type { Chain, Element, NftObject, Rule, Table } from '../../../src/nft/index.ts';
import { isNftInvalid, NftError, nft, Transaction } from '../../../src/nft/index.ts';

const t = nft.table('inet', 'weir');
const render = (...build: ((tx: Transaction) => unknown)[]): string => {
  const tx = new Transaction();
  for (const b of build) b(tx);
  return tx.render();
};
/** The validation error of a one-operation transaction, checking that queuing did not throw. */
function invalid(verb: 'add' | 'create' | 'insert' | 'replace' | 'delete' | 'destroy' | 'flush', obj: unknown): NftError {
  const tx = new Transaction();
  expect(() => (tx[verb] as (o: unknown) => Transaction)(obj)).not.toThrow();
  expect(tx.error).toBeInstanceOf(NftError);
  expect(() => tx.render()).toThrow(NftError);
  const e = tx.error as NftError;
  expect(e.errno).toBe(Errno.EINVAL);
  expect(e.code).toBe('WEIR_NFT');
  expect(e.cniCode).toBe(199);
  return e;
}

describe('tables', () => {
  it('renders add, create, delete and flush', () => {
    expect(render((tx) => tx.add(t).create(t).delete(t).flush(t))).toBe(
      ['add table inet weir', 'create table inet weir', 'delete table inet weir', 'flush table inet weir', ''].join('\n'),
    );
  });
  it('puts a comment in a body with the ; nft needs before }', () => {
    expect(render((tx) => tx.add(nft.table('ip6', 'x', { comment: "pods' rules; {all} #1" })))).toBe(`add table ip6 x { comment "pods' rules; {all} #1" ; }\n`);
  });
  it('renders every family', () => {
    for (const f of ['inet', 'ip', 'ip6', 'netdev', 'bridge'] as const) expect(render((tx) => tx.add(nft.table(f, 'x')))).toBe(`add table ${f} x\n`);
  });
  it('refuses insert and replace', () => {
    expect(invalid('insert', t).message).toMatch(/insert is not an operation on a table/);
    expect(invalid('replace', t).message).toMatch(/replace is not an operation on a table/);
  });
});

describe('chains', () => {
  it('renders a regular chain bare, and with a comment', () => {
    expect(render((tx) => tx.add(nft.chain(t, 'pol_a')).add(nft.chain(t, 'pol_b', { comment: 'ns/x' })))).toBe(
      'add chain inet weir pol_a\nadd chain inet weir pol_b { comment "ns/x" ; }\n',
    );
  });
  it('renders a base chain: type, hook, numeric priority, policy, comment', () => {
    const c = nft.chain(t, 'fwd_in', { type: 'filter', hook: 'forward', priority: 0, policy: 'drop', comment: 'c' });
    expect(render((tx) => tx.add(c))).toBe('add chain inet weir fwd_in { type filter hook forward priority 0 ; policy drop ; comment "c" ; }\n');
    expect(render((tx) => tx.create(c))).toMatch(/^create chain inet weir fwd_in \{ type filter/);
  });
  it('turns named priorities into numbers, per family, with offsets', () => {
    const prio = (family: Table['family'], priority: string | number, hook: Chain['hook'] = 'forward'): string =>
      render((tx) => tx.add(nft.chain(nft.table(family, 'x'), 'c', { type: 'filter', hook, priority })));
    expect(prio('inet', 'filter')).toMatch(/priority 0 ;/);
    expect(prio('inet', 'filter + 10')).toMatch(/priority 10 ;/);
    expect(prio('ip', 'raw')).toMatch(/priority -300 ;/);
    expect(prio('ip6', 'mangle-5')).toMatch(/priority -155 ;/);
    expect(prio('ip', 'security')).toMatch(/priority 50 ;/);
    expect(prio('bridge', 'filter')).toMatch(/priority -200 ;/);
    expect(prio('inet', '-5')).toMatch(/priority -5 ;/);
    expect(prio('inet', -150)).toMatch(/priority -150 ;/);
    expect(render((tx) => tx.add(nft.chain(t, 'n', { type: 'nat', hook: 'prerouting', priority: 'dstnat' })))).toMatch(
      /type nat hook prerouting priority -100 ;/,
    );
    expect(render((tx) => tx.add(nft.chain(t, 'n', { type: 'nat', hook: 'postrouting', priority: 'srcnat' })))).toMatch(/priority 100 ;/);
  });
  it('renders a netdev ingress chain with its device quoted', () => {
    const nd = nft.table('netdev', 'nd');
    expect(render((tx) => tx.add(nft.chain(nd, 'in', { type: 'filter', hook: 'ingress', device: 'eth0', priority: 'filter' })))).toBe(
      'add chain netdev nd in { type filter hook ingress device "eth0" priority 0 ; }\n',
    );
  });
  it('renders delete and flush by name', () => {
    expect(render((tx) => tx.delete(nft.chain(t, 'a')).flush(nft.chain(t, 'a')))).toBe('delete chain inet weir a\nflush chain inet weir a\n');
  });
  it('refuses half-specified, misplaced or unknown base chain settings', () => {
    expect(invalid('add', nft.chain(t, 'c', { type: 'filter', hook: 'forward' })).message).toMatch(/needs type, hook and priority/);
    expect(invalid('add', nft.chain(t, 'c', { policy: 'drop' })).message).toMatch(/cannot have a policy/);
    expect(invalid('add', nft.chain(t, 'c', { type: 'nat', hook: 'forward', priority: 0 })).message).toMatch(/nat chain cannot use hook forward/);
    expect(invalid('add', nft.chain(t, 'c', { type: 'route', hook: 'input', priority: 0 })).message).toMatch(/route chain cannot use hook input/);
    expect(invalid('add', nft.chain(nft.table('netdev', 'n'), 'c', { type: 'filter', hook: 'forward', priority: 0 })).message).toMatch(
      /does not exist in family netdev/,
    );
    expect(invalid('add', nft.chain(nft.table('netdev', 'n'), 'c', { type: 'filter', hook: 'ingress', priority: 0 })).message).toMatch(/needs a device/);
    expect(invalid('add', nft.chain(t, 'c', { type: 'filter', hook: 'forward', priority: 'nosuch' })).message).toMatch(/priority "nosuch"/);
    expect(invalid('add', nft.chain(t, 'c', { type: 'filter', hook: 'forward', priority: 1.5 })).message).toMatch(/not a 32-bit integer/);
    expect(invalid('add', nft.chain(nft.table('bridge', 'b'), 'c', { type: 'filter', hook: 'forward', priority: 'raw' })).message).toMatch(
      /bridge priority name/,
    );
  });
});

describe('rules', () => {
  const r = nft.rule(t, 'fwd_in', 'ip saddr @peers tcp dport { 80, 443 } counter accept');
  it('renders add, insert, with a comment after the rule text', () => {
    expect(render((tx) => tx.add({ ...r, comment: 'allow web' }).insert(r))).toBe(
      [
        'add rule inet weir fwd_in ip saddr @peers tcp dport { 80, 443 } counter accept comment "allow web"',
        'insert rule inet weir fwd_in ip saddr @peers tcp dport { 80, 443 } counter accept',
        '',
      ].join('\n'),
    );
  });
  it('positions add (after) and insert (before) by handle, replaces and deletes by handle', () => {
    const h = { ...r, handle: 7 };
    expect(render((tx) => tx.add(h).insert(h).replace(h).delete(h))).toBe(
      [
        'add rule inet weir fwd_in handle 7 ip saddr @peers tcp dport { 80, 443 } counter accept',
        'insert rule inet weir fwd_in handle 7 ip saddr @peers tcp dport { 80, 443 } counter accept',
        'replace rule inet weir fwd_in handle 7 ip saddr @peers tcp dport { 80, 443 } counter accept',
        'delete rule inet weir fwd_in handle 7',
        '',
      ].join('\n'),
    );
  });
  it('allows quoted strings with ; and # inside', () => {
    expect(render((tx) => tx.add(nft.rule(t, 'c', 'iifname "we;ird#0" accept')))).toBe('add rule inet weir c iifname "we;ird#0" accept\n');
  });
  it('trims the rule text', () => {
    expect(render((tx) => tx.add(nft.rule(t, 'c', '  accept  ')))).toBe('add rule inet weir c accept\n');
  });
  it('refuses empty text, a second command, comments, unbalanced quotes or braces, and bad handles', () => {
    expect(invalid('add', nft.rule(t, 'c', '  ')).message).toMatch(/rule text is empty/);
    expect(invalid('add', nft.rule(t, 'c', 'accept; flush ruleset')).message).toMatch(/contains ';' outside a quoted string/);
    expect(invalid('add', nft.rule(t, 'c', 'accept\nflush ruleset')).message).toMatch(/newline or control character/);
    expect(invalid('add', nft.rule(t, 'c', 'accept # hidden')).message).toMatch(/contains '#'/);
    expect(invalid('add', nft.rule(t, 'c', 'iifname "eth0 accept')).message).toMatch(/unterminated quoted string/);
    expect(invalid('add', nft.rule(t, 'c', 'tcp dport { 80 accept')).message).toMatch(/unbalanced '\{'/);
    expect(invalid('add', nft.rule(t, 'c', 'tcp dport } 80 accept')).message).toMatch(/unbalanced '\}'/);
    expect(invalid('replace', nft.rule(t, 'c', 'accept')).message).toMatch(/replace rule needs a handle/);
    expect(invalid('delete', nft.rule(t, 'c', '')).message).toMatch(/delete rule needs a handle/);
    expect(invalid('add', nft.rule(t, 'c', 'accept', { handle: 0 })).message).toMatch(/not a positive integer/);
    expect(invalid('add', nft.rule(t, 'c', 'accept', { handle: 1.5 })).message).toMatch(/not a positive integer/);
    expect(invalid('create', nft.rule(t, 'c', 'accept')).message).toMatch(/create is not an operation on a rule/);
    expect(invalid('destroy', nft.rule(t, 'c', 'accept', { handle: 3 })).message).toMatch(/destroy is not an operation on a rule/);
    expect(invalid('flush', nft.rule(t, 'c', 'accept')).message).toMatch(/flush is not an operation on a rule/);
  });
  it('a delete by handle needs no rule text', () => {
    expect(render((tx) => tx.delete({ kind: 'rule', table: t, chain: 'c', rule: '', handle: 4 }))).toBe('delete rule inet weir c handle 4\n');
  });
});

describe('sets and maps', () => {
  it('renders a set with sorted, deduplicated flags, auto-merge and comment', () => {
    const s = nft.set(t, 'peers', 'ipv4_addr', { flags: ['timeout', 'interval', 'interval'], autoMerge: true, comment: 'p' });
    expect(render((tx) => tx.add(s))).toBe('add set inet weir peers { type ipv4_addr ; flags interval,timeout ; auto-merge ; comment "p" ; }\n');
  });
  it('normalises concatenated types and map types', () => {
    expect(render((tx) => tx.add(nft.set(t, 's', 'ipv4_addr.inet_proto .  inet_service', { flags: ['interval'] })))).toBe(
      'add set inet weir s { type ipv4_addr . inet_proto . inet_service ; flags interval ; }\n',
    );
    expect(render((tx) => tx.create(nft.map(t, 'vm', 'ipv4_addr:verdict', { comment: 'v' })))).toBe(
      'create map inet weir vm { type ipv4_addr : verdict ; comment "v" ; }\n',
    );
    expect(render((tx) => tx.add(nft.map(t, 'm', 'ipv4_addr . inet_service : ipv4_addr . inet_service')))).toBe(
      'add map inet weir m { type ipv4_addr . inet_service : ipv4_addr . inet_service ; }\n',
    );
  });
  it('renders delete and flush by name', () => {
    expect(
      render((tx) =>
        tx
          .delete(nft.set(t, 's', 'ipv4_addr'))
          .flush(nft.set(t, 's', ''))
          .flush(nft.map(t, 'm', ''))
          .delete(nft.map(t, 'm', '')),
      ),
    ).toBe('delete set inet weir s\nflush set inet weir s\nflush map inet weir m\ndelete map inet weir m\n');
  });
  it('refuses bad types and flags', () => {
    expect(invalid('add', nft.set(t, 's', 'ipv4_addr : verdict')).message).toMatch(/that is a map/);
    expect(invalid('add', nft.set(t, 's', 'ipv4 addr')).message).toMatch(/not a data type/);
    expect(invalid('add', nft.set(t, 's', '')).message).toMatch(/set type is missing/);
    expect(invalid('add', nft.map(t, 'm', 'ipv4_addr')).message).toMatch(/must be "KEY : VALUE"/);
    expect(invalid('add', nft.set(t, 's', 'ipv4_addr', { flags: ['dynamic' as 'interval'] })).message).toMatch(/unknown set flag "dynamic"/);
    expect(invalid('add', nft.set(t, 's', 'ipv4_addr', { autoMerge: true })).message).toMatch(/auto-merge needs flags interval/);
    expect(invalid('insert', nft.set(t, 's', 'ipv4_addr')).message).toMatch(/insert is not an operation on a set/);
  });
});

describe('elements', () => {
  const svc = nft.set(t, 'svc', 'ipv4_addr . inet_proto . inet_service', { flags: ['interval'] });
  const vm = nft.map(t, 'vm', 'ipv4_addr : verdict');
  it('renders concatenated keys, comments and map values', () => {
    expect(render((tx) => tx.add(nft.setElement(t, 'svc', ['10.0.0.1', 'tcp', '80-90'], { comment: 'web' })))).toBe(
      'add element inet weir svc { 10.0.0.1 . tcp . 80-90 comment "web" }\n',
    );
    expect(render((tx) => tx.create(nft.mapElement(t, 'vm', ['10.0.0.1'], 'goto pol_a', { comment: 'pod a' })))).toBe(
      'create element inet weir vm { 10.0.0.1 comment "pod a" : goto pol_a }\n',
    );
  });
  it('deletes by key only (no value, no comment)', () => {
    expect(render((tx) => tx.delete(nft.mapElement(t, 'vm', ['10.0.0.1'], 'goto pol_a', { comment: 'x' })))).toBe('delete element inet weir vm { 10.0.0.1 }\n');
  });
  it('merges a run of operations on one set into one command, keeping order', () => {
    const e = (ip: string): Element => nft.setElement(t, 'peers', [ip]);
    const tx = new Transaction()
      .add(e('10.0.0.1'))
      .add(e('10.0.0.2'))
      .add(nft.setElement(t, 'other', ['10.0.0.3']))
      .add(e('10.0.0.4'))
      .delete(e('10.0.0.5'))
      .delete(e('10.0.0.6'))
      .create(e('10.0.0.7'));
    const c = tx.compile();
    expect(c.script).toBe(
      [
        'add element inet weir peers { 10.0.0.1, 10.0.0.2 }',
        'add element inet weir other { 10.0.0.3 }',
        'add element inet weir peers { 10.0.0.4 }',
        'delete element inet weir peers { 10.0.0.5, 10.0.0.6 }',
        'create element inet weir peers { 10.0.0.7 }',
        '',
      ].join('\n'),
    );
    expect(c.lines.map((l) => l.ops)).toEqual([[0, 1], [2], [3], [4, 5], [6]]);
    expect(c.stepLine).toEqual([0, 0, 1, 2, 3, 3, 4]);
  });
  it('does not merge across tables or between a set and a map of the same name', () => {
    const other = nft.table('ip', 'weir');
    expect(render((tx) => tx.add(nft.setElement(t, 's', ['1.1.1.1'])).add(nft.setElement(other, 's', ['1.1.1.1'])))).toBe(
      'add element inet weir s { 1.1.1.1 }\nadd element ip weir s { 1.1.1.1 }\n',
    );
  });
  it('accepts IPv6, prefixes, ranges, symbolic names, numbers and quoted strings as key parts', () => {
    expect(render((tx) => tx.add(nft.setElement(t, 's', ['fd00::/64', 'sctp', '1024-65535', '0x10', '"eth0"'])))).toBe(
      'add element inet weir s { fd00::/64 . sctp . 1024-65535 . 0x10 . "eth0" }\n',
    );
  });
  it('checks key arity and map values against a set or map declared earlier in the transaction', () => {
    const tx = new Transaction().add(svc).add(nft.setElement(t, 'svc', ['10.0.0.1', 'tcp']));
    expect(tx.error?.message).toMatch(
      /operation #1 \(add element\): element key has 2 part\(s\) but svc is of type ipv4_addr \. inet_proto \. inet_service \(3 part\(s\)\)/,
    );
    expect(tx.error?.op).toBe(1);
    expect(new Transaction().add(vm).add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto 1bad')).error?.message).toMatch(/verdict "goto 1bad"/);
    expect(new Transaction().add(vm).add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'goto ct')).error?.message).toMatch(
      /verdict target chain name "ct" is an nft keyword/,
    );
    expect(new Transaction().add(vm).add(nft.mapElement(t, 'vm', ['1.1.1.1'], 'jump pol_a')).error).toBeUndefined();
    expect(new Transaction().add(vm).add(nft.setElement(t, 'vm', ['1.1.1.1'])).error?.message).toMatch(/vm is a map, not a set/);
    expect(new Transaction().add(svc).add(nft.mapElement(t, 'svc', ['1.1.1.1', 'tcp', '80'], 'accept')).error?.message).toMatch(/svc is a set, not a map/);
    // Not declared in this transaction: only the syntax of the parts is checked (the backends check the rest).
    expect(new Transaction().add(nft.setElement(t, 'elsewhere', ['10.0.0.1', 'tcp'])).error).toBeUndefined();
  });
  it('refuses parts that would smuggle in another element or command', () => {
    expect(invalid('add', nft.setElement(t, 's', ['1.1.1.1, 2.2.2.2'])).message).toMatch(/not a single nft value/);
    expect(invalid('add', nft.setElement(t, 's', ['1.1.1.1 }; flush ruleset; add element inet weir s { 2.2.2.2'])).message).toMatch(/not a single nft value/);
    expect(invalid('add', nft.setElement(t, 's', ['1.1.1.1 . tcp'])).message).toMatch(/not a single nft value/);
    expect(invalid('add', nft.setElement(t, 's', [''])).message).toMatch(/key part is empty/);
    expect(invalid('add', nft.setElement(t, 's', [])).message).toMatch(/element key is empty/);
    expect(invalid('add', nft.mapElement(t, 'm', ['1.1.1.1'], 'accept }; flush ruleset')).message).toMatch(/not a single nft value/);
    expect(invalid('add', { kind: 'element', table: t, key: ['1.1.1.1'] }).message).toMatch(/exactly one of set or map/);
    expect(invalid('add', { kind: 'element', table: t, set: 's', map: 'm', key: ['1.1.1.1'] }).message).toMatch(/exactly one of set or map/);
    expect(invalid('add', nft.setElement(t, 's', ['1.1.1.1']) && { ...nft.setElement(t, 's', ['1.1.1.1']), value: 'accept' }).message).toMatch(
      /a set element has no value/,
    );
    expect(invalid('add', { kind: 'element', table: t, map: 'm', key: ['1.1.1.1'] }).message).toMatch(/map element needs a value/);
    expect(invalid('flush', nft.setElement(t, 's', ['1.1.1.1'])).message).toMatch(/flush is not an operation on a element/);
  });
});

describe('destroy (emulated as add + delete: nft 1.0.6 has no destroy)', () => {
  it('adds a minimal object, then deletes it', () => {
    const tx = new Transaction()
      .destroy(nft.table('inet', 'old', { comment: 'gone' }))
      .destroy(nft.chain(t, 'fwd_in', { type: 'filter', hook: 'forward', priority: 0, comment: 'x' }))
      .destroy(nft.set(t, 'peers', 'ipv4_addr', { flags: ['interval'], autoMerge: true, comment: 'x' }))
      .destroy(nft.map(t, 'vm', 'ipv4_addr : verdict', { comment: 'x' }));
    expect(tx.render()).toBe(
      [
        'add table inet old',
        'delete table inet old',
        'add chain inet weir fwd_in',
        'delete chain inet weir fwd_in',
        // the kernel refuses an `add set` whose type or flags differ, so they stay
        'add set inet weir peers { type ipv4_addr ; flags interval ; }',
        'delete set inet weir peers',
        'add map inet weir vm { type ipv4_addr : verdict ; }',
        'delete map inet weir vm',
        '',
      ].join('\n'),
    );
  });
  it('turns a run of element destroys into one add and one delete', () => {
    const tx = new Transaction()
      .destroy(nft.setElement(t, 's', ['1.1.1.1'], { comment: 'x' }))
      .destroy(nft.setElement(t, 's', ['2.2.2.2']))
      .destroy(nft.mapElement(t, 'vm', ['3.3.3.3'], 'accept'));
    const c = tx.compile();
    expect(c.script).toBe(
      [
        'add element inet weir s { 1.1.1.1, 2.2.2.2 }',
        'delete element inet weir s { 1.1.1.1, 2.2.2.2 }',
        'add element inet weir vm { 3.3.3.3 : accept }',
        'delete element inet weir vm { 3.3.3.3 }',
        '',
      ].join('\n'),
    );
    expect(c.steps.map((s) => `${s.verb}:${s.op}:${s.minimal}`)).toEqual([
      'add:0:true',
      'add:1:true',
      'delete:0:false',
      'delete:1:false',
      'add:2:true',
      'delete:2:false',
    ]);
  });
  it('needs the value of a map element and the type of a set', () => {
    expect(invalid('destroy', { kind: 'element', table: t, map: 'vm', key: ['1.1.1.1'] }).message).toMatch(/map element needs a value/);
    expect(invalid('destroy', nft.set(t, 's', '')).message).toMatch(/set type is missing/);
  });
});

describe('names and comments', () => {
  it('refuses nft keywords, bad characters, and over-long names as table, chain, set, map and jump target', () => {
    for (const name of ['ct', 'fwd', 'ip', 'tcp', 'counter', 'accept', 'map', 'destroy']) {
      expect(invalid('add', nft.chain(t, name)).message).toMatch(new RegExp(`chain name "${name}" is an nft keyword`));
      expect(invalid('add', nft.table('inet', name)).message).toMatch(/table name .* is an nft keyword/);
      expect(invalid('add', nft.set(t, name, 'ipv4_addr')).message).toMatch(/set name .* is an nft keyword/);
    }
    for (const name of ['a-b', 'a.b', '1a', 'a b', 'é', '', 'a/b', 'a"b']) expect(invalid('add', nft.chain(t, name)).message).toMatch(/chain name/);
    expect(invalid('add', nft.chain(t, 'x'.repeat(256))).message).toMatch(/longer than 255 bytes/);
    expect(invalid('add', nft.rule(t, 'fwd', 'accept')).message).toMatch(/chain name "fwd" is an nft keyword/);
    expect(invalid('add', nft.setElement(t, 'ct', ['1.1.1.1'])).message).toMatch(/set name "ct"/);
  });
  it('allows keywords that are keywords only after another word', () => {
    const names = ['state', 'saddr', 'dport', 'name', 'data', 'label', 'zone', 'weir_fwd', '_x', 'A_B9'];
    expect(new Transaction().add(t).add(nft.chain(t, names[0] as string)).error).toBeUndefined();
    for (const name of names) expect(new Transaction().add(nft.chain(t, name)).error, name).toBeUndefined();
  });
  it('refuses comments nft cannot carry: a quote, control characters, more than 128 bytes', () => {
    expect(invalid('add', nft.table('inet', 'x', { comment: 'say "hi"' })).message).toMatch(/contains '"'/);
    expect(invalid('add', nft.rule(t, 'c', 'accept', { comment: 'a\nb' })).message).toMatch(/control character/);
    expect(invalid('add', nft.setElement(t, 's', ['1.1.1.1'], { comment: 'x'.repeat(129) })).message).toMatch(/129 bytes, more than nft's 128/);
    expect(invalid('add', nft.chain(t, 'c', { comment: 'é'.repeat(65) })).message).toMatch(/130 bytes/);
    expect(new Transaction().add(nft.chain(t, 'c', { comment: 'é'.repeat(64) })).error).toBeUndefined();
    expect(new Transaction().add(nft.chain(t, 'c', { comment: '' })).render()).toBe('add chain inet weir c { comment "" ; }\n');
  });
  it('refuses unknown families and kinds and non-objects without throwing at queue time', () => {
    expect(invalid('add', { kind: 'table', family: 'arp', name: 'x' }).message).toMatch(/family "arp"/);
    expect(invalid('add', { kind: 'flowtable', table: t, name: 'x' }).message).toMatch(/unknown object kind "flowtable"/);
    expect(invalid('add', null).message).toMatch(/not an nft object/);
    expect(invalid('add', { kind: 'chain', name: 'x' }).message).toMatch(/table is missing/);
  });
});

describe('validation errors surface at render/run, not at queue time', () => {
  it('keeps the first error, with the index of its operation, and keeps queuing', () => {
    const tx = new Transaction()
      .add(t)
      .add(nft.chain(t, 'ok'))
      .add(nft.chain(t, 'ct'))
      .add(nft.rule(t, 'ok', ''));
    expect(tx.size).toBe(4);
    expect(tx.error?.op).toBe(2);
    expect(tx.error?.message).toBe('invalid nft transaction: operation #2 (add chain): chain name "ct" is an nft keyword');
    expect(isNftInvalid(tx.error)).toBe(true);
    expect(() => tx.render()).toThrow(tx.error);
    expect(() => tx.compile()).toThrow(tx.error);
    expect(() => tx.steps()).toThrow(tx.error);
  });
  it('an empty transaction renders to nothing', () => {
    expect(new Transaction().render()).toBe('');
    expect(new Transaction().compile().lines).toEqual([]);
  });
});

describe('determinism', () => {
  it('renders the same script for the same operations, whatever the key order of the objects', () => {
    const a: NftObject[] = [
      { kind: 'table', family: 'inet', name: 'weir', comment: 'c' },
      { kind: 'chain', table: t, name: 'fwd_in', type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept', comment: 'x' },
      { kind: 'set', table: t, name: 's', type: 'ipv4_addr', flags: ['interval', 'constant'], autoMerge: true },
      { kind: 'rule', table: t, chain: 'fwd_in', rule: 'counter', comment: 'r' },
      { kind: 'element', table: t, set: 's', key: ['10.0.0.0/8'], comment: 'e' },
    ];
    const reversed = a.map((o) => Object.fromEntries(Object.entries(o).reverse()) as unknown as NftObject);
    const s1 = new Transaction();
    const s2 = new Transaction();
    for (const o of a) s1.add(o);
    for (const o of reversed) s2.add(o);
    expect(s2.render()).toBe(s1.render());
    expect(s1.render()).toBe(s1.render());
    expect(s1.render()).toContain('flags constant,interval ;');
  });
  it('nft.* constructors copy only family and name of a table reference', () => {
    const table: Table = nft.table('inet', 'weir', { comment: 'not carried' });
    const c: Chain = nft.chain(table, 'c');
    const r: Rule = nft.rule(table, 'c', 'accept');
    expect(c.table).toEqual({ family: 'inet', name: 'weir' });
    expect(r.table).toEqual({ family: 'inet', name: 'weir' });
  });
});

describe('queued objects are copies', () => {
  it('changing an object after queuing it changes neither the check nor the script', () => {
    const key = ['10.0.0.1'];
    const table = { family: 'inet' as const, name: 'weir' };
    const e = { kind: 'element' as const, table, set: 'peers', key };
    const tx = new Transaction().add(e);
    key[0] = '1.1.1.1 }; flush ruleset; add element inet weir peers { 2.2.2.2';
    table.name = 'other';
    (e as { set: string }).set = 'ct';
    expect(tx.error).toBeUndefined();
    expect(tx.render()).toBe('add element inet weir peers { 10.0.0.1 }\n');
    expect(Object.isFrozen(tx.operations[0]?.obj)).toBe(true);
  });
});
