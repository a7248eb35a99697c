// nft's text listing of one table (`nft list table F N`, stateless) read back
// as plain data: its sets and maps with their element texts, and its chains
// with their rule lines. Pure: the agent's drift check (agent/kernel-drift.ts)
// compares this with the ruleset it last applied.
//
// Text rather than `nft -j`: at 10k pods x 1k policies (107k elements, 2.7k
// rules) libnftables prints the text in 0.5-1.1 s and the JSON in 0.9-1.3 s,
// and a JSON rule is an expression tree, while the text of a rule is what
// weir wrote, as nft prints it (ruleText() below maps the one construct
// nft 1.0.6 prints differently).
//
// The layout nft 1.0.6 prints (one tab per level):
//   table inet weir {
//   	comment "..."
//   	set NAME {            (or `map NAME {`)
//   		type T [: verdict]
//   		flags interval
//   		auto-merge
//   		comment "..."
//   		elements = { a, b,
//   			     c }
//   	}
//   	chain NAME {
//   		comment "..."
//   		type filter hook forward priority filter; policy accept;
//   		RULE [comment "..."]
//   	}
//   }
import { NftError } from './errors.ts';

export interface ListedSet {
  readonly name: string;
  readonly kind: 'set' | 'map';
  /** `ipv4_addr`, `inet_proto . inet_service`, `ipv4_addr : verdict`. */
  readonly type: string;
  readonly flags: readonly string[];
  /** Element texts as nft prints them: `10.0.0.1`, `tcp . 80-90`, `10.0.0.1 : goto prof_a`. */
  readonly elements: readonly string[];
}

export interface ListedChain {
  readonly name: string;
  /** Base chains: `filter hook forward priority filter; policy accept;` as printed (after `type `). */
  readonly base?: string;
  /** `accept` or `drop` for base chains. */
  readonly policy?: string;
  /** Rule lines, trimmed, comments included. */
  readonly rules: readonly string[];
}

export interface ListedTable {
  readonly family: string;
  readonly name: string;
  readonly sets: ReadonlyMap<string, ListedSet>;
  readonly chains: ReadonlyMap<string, ListedChain>;
}

const bad = (line: number, why: string): NftError => new NftError(`cannot read nft's listing, line ${line + 1}: ${why}`);

/** Parses the listing of one table; throws NftError on anything it does not recognise. */
export function parseTableListing(text: string): ListedTable {
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && (lines[i] as string).trim() === '') i++;
  const head = /^table (\S+) (\S+) \{$/.exec(lines[i] ?? '');
  if (!head) throw bad(i, `expected "table FAMILY NAME {", got ${JSON.stringify(lines[i] ?? '')}`);
  const sets = new Map<string, ListedSet>();
  const chains = new Map<string, ListedChain>();
  for (i++; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '}') return { family: head[1] as string, name: head[2] as string, sets, chains };
    if (line.trim() === '' || /^\tcomment "/.test(line) || /^\tflags /.test(line)) continue;
    const obj = /^\t(set|map|chain) (\S+) \{$/.exec(line);
    if (!obj) throw bad(i, `unexpected ${JSON.stringify(line)}`);
    const [, kind, name] = obj as unknown as [string, 'set' | 'map' | 'chain', string];
    const end = closing(lines, i);
    const body = lines.slice(i + 1, end);
    if (kind === 'chain') chains.set(name, parseChain(name, body));
    else sets.set(name, parseSet(name, kind, body, i + 1));
    i = end;
  }
  throw bad(lines.length - 1, 'the table is not closed');
}

/** The index of the `\t}` line that closes the object opened at `from`. */
function closing(lines: readonly string[], from: number): number {
  for (let j = from + 1; j < lines.length; j++) if (lines[j] === '\t}') return j;
  throw bad(from, 'object not closed');
}

function parseChain(name: string, body: readonly string[]): ListedChain {
  const rules: string[] = [];
  let base: string | undefined;
  let policy: string | undefined;
  for (const raw of body) {
    const line = raw.trim();
    if (line === '' || (line.startsWith('comment "') && rules.length === 0 && base === undefined)) continue;
    const b = /^type (.*)$/.exec(line);
    if (b && base === undefined && rules.length === 0) {
      base = b[1] as string;
      policy = /policy (\w+);/.exec(line)?.[1];
      continue;
    }
    rules.push(line);
  }
  return { name, ...(base !== undefined ? { base } : {}), ...(policy !== undefined ? { policy } : {}), rules };
}

function parseSet(name: string, kind: 'set' | 'map', body: readonly string[], first: number): ListedSet {
  let type = '';
  let flags: string[] = [];
  const elements: string[] = [];
  for (let j = 0; j < body.length; j++) {
    const line = (body[j] as string).trim();
    if (line.startsWith('type ')) type = line.slice(5);
    else if (line.startsWith('flags '))
      flags = line
        .slice(6)
        .split(',')
        .map((f) => f.trim());
    else if (line.startsWith('elements = {')) {
      // Elements run over lines until the one ending in `}`.
      let part = line.slice('elements = {'.length);
      for (;;) {
        const last = part.endsWith('}');
        for (const e of (last ? part.slice(0, -1) : part).split(',')) {
          const t = e.trim();
          if (t !== '') elements.push(t);
        }
        if (last) break;
        j++;
        if (j >= body.length) throw bad(first + j, `elements of ${name} not closed`);
        part = (body[j] as string).trim();
      }
    }
  }
  if (type === '') throw bad(first, `${kind} ${name} has no type`);
  return { name, kind, type, flags, elements };
}
