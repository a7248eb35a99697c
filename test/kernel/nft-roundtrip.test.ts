// `nft` can read what weir writes. kubernetes/kubernetes#135705 reports
// netlink-written rules that `nft` cannot list, or that crash it; weir writes
// element batches over netlink itself (NetlinkElementWriter), so a property
// test writes random element diffs through it into a table in a throwaway
// namespace, and after each diff the nft binary must list the ruleset
// (`nft list ruleset` exits 0, `nft -j list ruleset` parses) with exactly
// the elements intended. Needs root.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIp, parseIp } from '../../src/ip.ts';
import type { ElementChange } from '../../src/nft/element-writer.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { NetlinkElementWriter } from '../../src/nft/netlink-elements.ts';
import { nft, Transaction } from '../../src/nft/transaction.ts';
import { Netns } from '../../src/sys/netns.ts';
import { createNetns, sh, sweepLeakedNetns, type TestNetns } from '../helpers/netns.ts';
import { elementSets, elemText } from '../helpers/nft-sets.ts';

const t = nft.table('inet', 'weirrt');
const sets = elementSets(t);
type SetName = keyof typeof sets;
const NAMES = Object.keys(sets) as SetName[];

// Values as nft lists them, so that the intended table compares as text.
const v4 = fc.tuple(fc.constantFrom(10, 192), fc.nat(3), fc.nat(255)).map(([a, b, c]) => `${a}.${b}.0.${c}`);
// Canonical text (fd00::, not fd00::0), as nft prints it.
const v6 = fc.tuple(fc.constantFrom('fd00', '2001:db8'), fc.nat(0xffff)).map(([p, x]) => formatIp(parseIp(`${p}::${x.toString(16)}`).bytes));
const proto = fc.constantFrom('tcp', 'udp', 'sctp');
const port = fc.nat(65535).map(String);
const verdict = fc.constantFrom('accept', 'drop', 'goto prof_a', 'jump prof_b');
const KEYS: Record<SetName, fc.Arbitrary<string[]>> = {
  s4: v4.map((a) => [a]),
  s6: v6.map((a) => [a]),
  c4: fc.tuple(v4, proto, port),
  c6: fc.tuple(v6, proto, port),
  pp: fc.tuple(proto, port),
  p: fc.constantFrom('icmp', 'tcp', 'udp', 'sctp').map((p) => [p]),
  sv: port.map((p) => [p]),
  m4: v4.map((a) => [a]),
  m6: v6.map((a) => [a]),
};
const isMap = (s: SetName): boolean => sets[s].kind === 'map';

/** One diff: per touched set, some keys to add (with a verdict for maps) and a share of the present ones to delete. */
const diffArb = fc.array(
  fc
    .constantFrom(...NAMES)
    .chain((set) =>
      fc.record({ set: fc.constant(set), adds: fc.array(fc.tuple(KEYS[set], verdict), { maxLength: 12 }), deleteEvery: fc.integer({ min: 1, max: 4 }) }),
    ),
  { minLength: 1, maxLength: 5 },
);

type Model = Map<SetName, Map<string, string | undefined>>;
type Diff = Array<{ set: SetName; adds: Array<[string[], string]>; deleteEvery: number }>;

/** The changes of one diff against the model (deletes of present keys, adds of absent ones), applied to the model. */
function changesOf(model: Model, diff: Diff): ElementChange[] {
  const out: ElementChange[] = [];
  for (const { set, adds, deleteEvery } of diff) {
    const m = model.get(set) as Map<string, string | undefined>;
    let i = 0;
    for (const key of [...m.keys()]) {
      if (i++ % deleteEvery !== 0) continue;
      out.push({ verb: 'delete', set: sets[set], key: key.split(' . ') });
      m.delete(key);
    }
    for (const [key, value] of adds) {
      const k = key.join(' . ');
      if (m.has(k)) continue; // a map element that exists with another verdict would be EEXIST: not a diff weir makes
      out.push({ verb: 'add', set: sets[set], key, ...(isMap(set) ? { value } : {}) });
      m.set(k, isMap(set) ? value : undefined);
    }
  }
  return out;
}

describe('nft reads what the element writer writes', () => {
  let ns: TestNetns;
  let netns: Netns;
  let lib: LibNftables;
  let writer: NetlinkElementWriter;
  let rootTables = '';

  beforeAll(() => {
    rootTables = sh('nft', ['list', 'tables']);
    sweepLeakedNetns('nftrt');
    ns = createNetns('nftrt');
    netns = Netns.open(ns.path);
    lib = new LibNftables({ netns });
    const tx = new Transaction().add(t).add(nft.chain(t, 'prof_a')).add(nft.chain(t, 'prof_b'));
    for (const s of Object.values(sets)) tx.add(s);
    lib.run(tx);
    writer = NetlinkElementWriter.open(ns.path);
  });

  afterAll(() => {
    writer?.close();
    lib?.close();
    netns?.close();
    ns?.destroy();
    expect(sh('nft', ['list', 'tables'])).toBe(rootTables);
  });

  /** The nft binary's view: `nft list ruleset` must succeed, and `nft -j list ruleset` parse; elements as text per set. */
  function listed(): Record<string, string[]> {
    const text = ns.run(['nft', 'list', 'ruleset']);
    expect(text.code, text.stderr).toBe(0);
    const json = ns.run(['nft', '-j', 'list', 'ruleset']);
    expect(json.code, json.stderr).toBe(0);
    const out: Record<string, string[]> = {};
    for (const obj of (JSON.parse(json.stdout) as { nftables: Record<string, unknown>[] }).nftables) {
      const s = (obj['set'] ?? obj['map']) as { name: string; elem?: unknown[] } | undefined;
      if (s) out[s.name] = (s.elem ?? []).map(elemText).sort();
    }
    return out;
  }

  const intended = (model: Model): Record<string, string[]> =>
    Object.fromEntries(
      NAMES.map((n) => [n, [...(model.get(n) as Map<string, string | undefined>)].map(([k, v]) => (v === undefined ? k : `${k} : ${v}`)).sort()]),
    );

  it('random diffs: nft lists the table, and its elements are the intended ones', () => {
    fc.assert(
      fc.property(fc.array(diffArb, { minLength: 1, maxLength: 4 }), (diffs) => {
        const model: Model = new Map(NAMES.map((n) => [n, new Map()]));
        const flush = new Transaction();
        for (const n of NAMES) flush.flush(sets[n]);
        lib.run(flush);
        for (const diff of diffs) {
          writer.apply(changesOf(model, diff));
          expect(listed()).toEqual(intended(model));
        }
      }),
      { numRuns: 25 },
    );
  });
});
