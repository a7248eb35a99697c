// Kernel = applied, without a kernel: nft's listing (text as nft 1.0.6 prints
// it; the kernel tests check the same against the real nft) parsed and
// compared with a Ruleset, each kind of drift named; and the KernelVerifier's
// schedule (generation, cheap check, spaced full checks, repair) over a
// scripted kernel.
import { describe, expect, it } from 'vitest';
import { tableDrift } from '../../../src/agent/kernel-drift.ts';
import { type CheckResult, type KernelTableSource, KernelVerifier } from '../../../src/agent/kernel-verifier.ts';
import { parseTableListing } from '../../../src/nft/listing.ts';
import { nft } from '../../../src/nft/transaction.ts';
import { type Ruleset, RulesetBuilder } from '../../../src/policy/ruleset.ts';

const T = nft.table('inet', 'weir', { comment: 'weir' });

function ruleset(): Ruleset {
  const b = new RulesetBuilder(T);
  b.set('known4', 'ipv4_addr', undefined, 'known');
  for (const ip of ['10.244.1.5', '10.244.1.6']) b.element('known4', [ip]);
  b.set('cidr4', 'ipv4_addr', ['interval'], 'ipBlock peers');
  b.element('cidr4', ['10.0.0.0-10.0.255.255']);
  b.element('cidr4', ['10.1.0.0-10.1.0.9']);
  b.element('cidr4', ['192.168.0.7']);
  b.set('ports', 'inet_proto . inet_service', ['interval'], 'ports');
  b.element('ports', ['tcp', '80']);
  b.element('ports', ['tcp', '8000-8099']);
  b.map('egress4', 'ipv4_addr : verdict', 'egress');
  b.element('egress4', ['10.244.1.5'], 'goto prof_a');
  b.chain('pod_egress', { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' }, 'egress');
  b.rule('pod_egress', 'ct state new tcp flags & (syn | ack) != syn counter drop', 'no SYN');
  b.rule('pod_egress', 'ip saddr vmap @egress4');
  b.chain('prof_a');
  b.rule('prof_a', 'ip daddr @cidr4 meta l4proto . th dport @ports counter accept', 'x/p ingress[0]');
  b.rule('prof_a', 'counter drop', 'x/a: default deny');
  return b.ruleset;
}

// How nft 1.0.6 lists that table: prefixes for whole-prefix ranges, one
// address for a one-address range, elements wrapped, the SYN rule reworded.
const LISTING = `table inet weir {
	comment "weir"
	set cidr4 {
		type ipv4_addr
		flags interval
		comment "ipBlock peers"
		elements = { 10.0.0.0/16, 10.1.0.0-10.1.0.9,
			     192.168.0.7 }
	}

	set known4 {
		type ipv4_addr
		comment "known"
		elements = { 10.244.1.5, 10.244.1.6 }
	}

	map egress4 {
		type ipv4_addr : verdict
		comment "egress"
		elements = { 10.244.1.5 : goto prof_a }
	}

	set ports {
		type inet_proto . inet_service
		flags interval
		comment "ports"
		elements = { tcp . 80,
			     tcp . 8000-8099 }
	}

	chain pod_egress {
		comment "egress"
		type filter hook forward priority filter; policy accept;
		ct state new tcp flags != syn / syn,ack counter drop comment "no SYN"
		ip saddr vmap @egress4
	}

	chain prof_a {
		ip daddr @cidr4 meta l4proto . th dport @ports counter accept comment "x/p ingress[0]"
		counter drop comment "x/a: default deny"
	}
}
`;

const drift = (text: string | undefined) => tableDrift(ruleset(), text === undefined ? undefined : parseTableListing(text));

describe('tableDrift over nft listings', () => {
  it('a table as nft prints it matches what was applied', () => {
    expect(drift(LISTING)).toEqual({ counts: {}, examples: [] });
  });

  it('adjacent intervals merged by nft still match', () => {
    const rs = ruleset();
    const b = new RulesetBuilder(T, rs);
    b.element('cidr4', ['10.1.0.10-10.1.0.255']);
    const merged = LISTING.replace('10.1.0.0-10.1.0.9', '10.1.0.0/24');
    expect(tableDrift(rs, parseTableListing(merged)).counts).toEqual({});
  });

  it.each([
    ['an element deleted', LISTING.replace('10.244.1.5, 10.244.1.6', '10.244.1.6'), { 'element-missing': 1 }],
    ['an element added', LISTING.replace('10.244.1.5, 10.244.1.6', '10.244.1.5, 10.244.1.6, 10.244.1.7'), { 'element-extra': 1 }],
    ['a map element pointing elsewhere', LISTING.replace('10.244.1.5 : goto prof_a', '10.244.1.5 : accept'), { 'element-missing': 1, 'element-extra': 1 }],
    ['an interval changed', LISTING.replace('192.168.0.7 }', '192.168.0.8 }'), { 'element-missing': 1, 'element-extra': 1 }],
    ['an interval shrunk (the merged ranges differ)', LISTING.replace('10.0.0.0/16', '10.0.0.0/17'), { 'element-missing': 1, 'element-extra': 2 }],
    ['a chain flushed', LISTING.replace(/\t\tip daddr @cidr4.*\n\t\tcounter drop.*\n/, ''), { 'chain-changed': 1 }],
    ['a rule replaced', LISTING.replace('counter drop comment "x/a: default deny"', 'counter accept comment "x/a: default deny"'), { 'chain-changed': 1 }],
    ['a base chain policy changed', LISTING.replace('policy accept;', 'policy drop;'), { 'chain-changed': 1 }],
    ['a set deleted', LISTING.replace(/\tset known4 \{[^}]*\}\n\t\}\n/, ''), { 'set-missing': 1 }],
    ['a chain added', LISTING.replace(/\n\}\n$/, '\n\tchain mine {\n\t\taccept\n\t}\n}\n'), { 'chain-extra': 1 }],
  ])('%s', (_what, text, counts) => {
    expect(drift(text).counts).toEqual(counts);
  });

  it('a table that is gone', () => {
    expect(drift(undefined)).toMatchObject({ counts: { 'table-missing': 1 } });
  });

  it('a listing it cannot read is an error, not a match', () => {
    expect(() => parseTableListing('table inet weir {\n\tbogus\n}\n')).toThrow(/cannot read nft's listing/);
  });
});

/** A scripted kernel: the listing, a generation and the table's identity, changed by the test. */
class ScriptedKernel implements KernelTableSource {
  text: string | undefined = LISTING;
  gen = 10;
  handle = 1n;
  use = 6;
  lists = 0;
  list(): string | undefined {
    this.lists++;
    return this.text;
  }
  generation(): number {
    return this.gen;
  }
  tableInfo() {
    return this.text === undefined ? undefined : { handle: this.handle, use: this.use };
  }
}

function setup() {
  const k = new ScriptedKernel();
  let now = 0;
  const results: CheckResult[] = [];
  let repairs = 0;
  const applied = ruleset();
  const v = new KernelVerifier(
    {
      source: k,
      applied: () => applied,
      repair: () => {
        repairs++;
        k.text = LISTING;
        k.gen++;
        k.handle++;
        return true;
      },
      onResult: (r) => results.push(r),
    },
    { minFullMs: 5000, costFactor: 100, now: () => now },
  );
  return { k, v, results, repairs: () => repairs, advance: (ms: number) => (now += ms) };
}

describe('KernelVerifier', () => {
  it('lists the table once, then only when the generation moves and the spacing allows', () => {
    const { k, v, results } = setup();
    v.tick();
    expect(k.lists).toBe(1);
    expect(results.at(-1)).toMatchObject({ kind: 'full', clean: true });
    v.tick();
    expect(k.lists).toBe(1); // generation unchanged: nothing read
    k.gen++;
    v.tick();
    expect(k.lists).toBe(1); // moved, but within the 5 s floor
  });

  it('its own commits keep the table trusted', () => {
    const { k, v, advance } = setup();
    v.tick();
    k.gen++;
    v.afterSync(3, false);
    advance(60_000);
    v.tick();
    expect(k.lists).toBe(1);
    k.gen += 2; // someone else committed too
    v.afterSync(1, false);
    v.tick();
    expect(k.lists).toBe(2);
  });

  it('a deleted table is found by the cheap check at once and repaired', () => {
    const { k, v, results, repairs } = setup();
    v.tick();
    k.text = undefined;
    k.gen++;
    const r = v.tick();
    expect(r).toMatchObject({ kind: 'cheap', clean: false, repaired: true, afterRepair: { clean: true }, drift: { counts: { 'table-missing': 1 } } });
    expect(repairs()).toBe(1);
    expect(results.at(-1)).toBe(r);
    expect(v.repairs).toBe(1);
  });

  it('a table made again (new handle) or missing a chain is found by the cheap check', () => {
    const { k, v } = setup();
    v.tick();
    v.afterSync(5, true); // learns the handle of a full replacement
    k.gen++;
    k.use = 5;
    expect(v.tick()?.drift.counts).toEqual({ 'objects-changed': 1 });
    k.gen++;
    k.handle = 99n;
    expect(v.tick()?.drift.counts).toEqual({ 'table-replaced': 1 });
  });

  it('a deleted element waits for the next full check, then is repaired; spacing follows the cost', () => {
    const { k, v, advance, repairs } = setup();
    v.tick();
    k.text = LISTING.replace('10.244.1.5, 10.244.1.6', '10.244.1.6');
    k.gen++;
    expect(v.tick()).toBeUndefined();
    advance(5000);
    expect(v.tick()).toMatchObject({ kind: 'full', drift: { counts: { 'element-missing': 1 } }, repaired: true, afterRepair: { clean: true } });
    expect(repairs()).toBe(1);
  });

  it('on demand: GET reports without repairing', () => {
    const { k, v, repairs } = setup();
    k.text = LISTING.replace('policy accept;', 'policy drop;');
    expect(v.check({ repair: false })).toMatchObject({ clean: false, drift: { counts: { 'chain-changed': 1 } } });
    expect(repairs()).toBe(0);
    expect(v.check({ repair: true })).toMatchObject({ repaired: true });
  });
});

describe('KernelVerifier: a difference a replacement does not remove', () => {
  it('is repaired once, then reported without repairing again', () => {
    const k = new ScriptedKernel();
    const odd = LISTING.replace('counter drop comment "x/a: default deny"', 'counter drop comment "x/a: default deny" # printed otherwise');
    k.text = odd;
    // The "repair" leaves the table listing the same way.
    const v = new KernelVerifier(
      {
        source: k,
        applied: () => ruleset(),
        repair: () => {
          k.text = odd;
          k.gen++;
          return true;
        },
      },
      { minFullMs: 5000, now: () => 0 },
    );
    expect(v.check({ repair: true })).toMatchObject({ repaired: true, afterRepair: { clean: false } });
    k.gen++;
    const again = v.check({ repair: true });
    expect(again).toMatchObject({ clean: false });
    expect(again.repaired).toBeUndefined();
    expect(v.repairs).toBe(1);
  });
});
