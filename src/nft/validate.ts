// Checks on names and text that go into an nft script (pure). Each check
// returns a reason string or undefined; transaction.ts turns the first reason
// into an NftError. The rules come from nft 1.0.6's scanner and parser, checked
// against the real `nft` on this machine:
//
// - Unquoted identifiers (table, chain, set and map names) are scanned as
//   `({letter}|[_.])({letter}|{digit}|[/\-_.])*`, but weir allows only
//   `^[A-Za-z_][A-Za-z0-9_]*$`: a `.`, `-` or `/` in a name is legal but reads
//   badly next to concatenations, ranges and prefixes in rule text.
// - A name that the scanner turns into a keyword token is a syntax error
//   (`add chain inet t ct`). NFT_KEYWORDS lists every such word of 1.0.6
//   (found by trying each scanner keyword as a chain name) plus the words that
//   became global keywords in later releases (`destroy`, `tunnel`, `vxlan`...).
//   Words that are keywords only inside a scope (`state` after `ct`, `saddr`
//   after `ip`) are fine as names and are allowed.
// - Quoted strings are `"[^"]*"`: there is no escape, so a comment can never
//   contain `"`. Comments are at most 128 bytes (NFTNL_UDATA_COMMENT_MAXLEN);
//   nft counts bytes, not characters.
import type { ChainHook, ChainType, Family } from './types.ts';

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** NFT_NAME_MAXLEN is 256 including the NUL. */
export const NAME_MAX_BYTES = 255;
export const COMMENT_MAX_BYTES = 128;

// prettier-ignore
export const NFT_KEYWORDS: ReadonlySet<string> = new Set([
  // rejected as a name by nft 1.0.6 (scanned as a keyword in every context)
  'eq',
  'ne',
  'le',
  'lt',
  'ge',
  'gt',
  'lshift',
  'rshift',
  'xor',
  'and',
  'or',
  'not',
  'vmap',
  'include',
  'define',
  'redefine',
  'undefine',
  'describe',
  'hook',
  'device',
  'devices',
  'table',
  'chain',
  'rule',
  'set',
  'element',
  'map',
  'flowtable',
  'handle',
  'ruleset',
  'socket',
  'tproxy',
  'accept',
  'drop',
  'continue',
  'jump',
  'goto',
  'return',
  'inet',
  'netdev',
  'add',
  'replace',
  'update',
  'create',
  'insert',
  'delete',
  'get',
  'list',
  'reset',
  'flush',
  'rename',
  'import',
  'export',
  'monitor',
  'position',
  'index',
  'comment',
  'constant',
  'interval',
  'dynamic',
  'timeout',
  'elements',
  'expires',
  'policy',
  'size',
  'flow',
  'offload',
  'meter',
  'counter',
  'log',
  'queue',
  'limit',
  'quota',
  'hour',
  'day',
  'reject',
  'snat',
  'dnat',
  'masquerade',
  'redirect',
  'random',
  'th',
  'bridge',
  'ether',
  'type',
  'typeof',
  'vlan',
  'arp',
  'ip',
  'ecn',
  'time',
  'icmp',
  'icmpv6',
  'igmp',
  'ip6',
  'priority',
  'ah',
  'esp',
  'comp',
  'flags',
  'udp',
  'udplite',
  'tcp',
  'dccp',
  'sctp',
  'rt',
  'rt0',
  'rt2',
  'srh',
  'hbh',
  'frag',
  'dst',
  'mh',
  'meta',
  'mark',
  'iif',
  'iifname',
  'iiftype',
  'oif',
  'oifname',
  'oiftype',
  'skuid',
  'skgid',
  'nftrace',
  'rtclassid',
  'ibriport',
  'ibrname',
  'obriport',
  'obrname',
  'pkttype',
  'cpu',
  'iifgroup',
  'oifgroup',
  'cgroup',
  'ct',
  'numgen',
  'jhash',
  'symhash',
  'dup',
  'fwd',
  'fib',
  'osf',
  'synproxy',
  'notrack',
  'all',
  'exists',
  'missing',
  'exthdr',
  'ipsec',
  'secmark',
  'xt',
  // global keywords in later nft releases
  'destroy',
  'tunnel',
  'vxlan',
  'vni',
  'geneve',
  'gre',
  'gretap',
  'last',
]);

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
// biome-ignore lint/suspicious/noControlCharactersInRegex: nft strings cannot carry control characters; this finds them.
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

export function checkName(what: string, name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return `${what} name is missing`;
  if (!NAME_RE.test(name)) return `${what} name ${JSON.stringify(name)} must match ${NAME_RE.source}`;
  if (bytes(name) > NAME_MAX_BYTES) return `${what} name ${JSON.stringify(name.slice(0, 20))}... is longer than ${NAME_MAX_BYTES} bytes`;
  if (NFT_KEYWORDS.has(name)) return `${what} name ${JSON.stringify(name)} is an nft keyword`;
  return undefined;
}

export function checkComment(comment: unknown): string | undefined {
  if (comment === undefined) return undefined;
  if (typeof comment !== 'string') return 'comment must be a string';
  if (comment.includes('"')) return `comment ${JSON.stringify(comment)} contains '"' (nft strings have no escapes)`;
  if (CONTROL_RE.test(comment)) return `comment ${JSON.stringify(comment)} contains a control character`;
  if (bytes(comment) > COMMENT_MAX_BYTES) return `comment is ${bytes(comment)} bytes, more than nft's ${COMMENT_MAX_BYTES}`;
  return undefined;
}

/** A quoted string the nft scanner reads as one token: no `"` inside, no control characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a quoted nft string has no control characters; this excludes them.
const QUOTED_RE = /^"[^"\u0000-\u001f\u007f]*"$/;
/**
 * A bare value token: addresses, prefixes, ranges, ports, protocol and
 * symbolic constant names (`10.0.0.0/8`, `fd00::/64`, `80-90`, `tcp`, `0x10`).
 * No spaces, commas, braces, `;`, `#`, `"` or `@`, so one token can never
 * become two elements or two commands.
 */
const TOKEN_RE = /^[A-Za-z0-9_.:/-]+$/;

export function checkKeyPart(part: unknown): string | undefined {
  if (typeof part !== 'string' || part === '') return 'element key part is empty';
  if (part === '.' || part === ':' || part === '-') return `element key part ${JSON.stringify(part)} is not a value`;
  if (TOKEN_RE.test(part) || QUOTED_RE.test(part)) return undefined;
  return `element key part ${JSON.stringify(part)} is not a single nft value (allowed: ${TOKEN_RE.source} or a "quoted" string)`;
}

const VERDICT_RE = /^(accept|drop|continue|return|(jump|goto) ([A-Za-z_][A-Za-z0-9_]*))$/;

/** A map value: a verdict for `: verdict` maps, else value tokens joined by ` . `. */
export function checkValue(value: unknown, verdict: boolean | undefined): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') return 'map element needs a value';
  if (verdict === true) {
    const m = VERDICT_RE.exec(value);
    if (!m) return `verdict ${JSON.stringify(value)} must be accept, drop, continue, return, jump CHAIN or goto CHAIN`;
    if (m[3] !== undefined) return checkName('verdict target chain', m[3]);
    return undefined;
  }
  const tokens = value.split(' ');
  for (const t of tokens) {
    if (t === '.') continue;
    if (t === '' || (!TOKEN_RE.test(t) && !QUOTED_RE.test(t)))
      return `map value ${JSON.stringify(value)} is not a single nft value (tokens separated by one space)`;
  }
  return undefined;
}

/**
 * Rule text: one command's worth. Outside quoted strings it must not contain
 * `;` or `#` (they would end the command or comment out the rest, including
 * weir's own `comment`), quotes and braces must balance, and nowhere may it
 * contain a newline or other control character.
 */
export function checkRuleText(rule: unknown): string | undefined {
  if (typeof rule !== 'string' || rule.trim() === '') return 'rule text is empty';
  if (CONTROL_RE.test(rule)) return `rule ${JSON.stringify(rule)} contains a newline or control character`;
  let quoted = false;
  let depth = 0;
  for (const ch of rule) {
    if (ch === '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (ch === ';' || ch === '#') return `rule ${JSON.stringify(rule)} contains '${ch}' outside a quoted string`;
    if (ch === '{') depth++;
    if (ch === '}' && --depth < 0) return `rule ${JSON.stringify(rule)} has an unbalanced '}'`;
  }
  if (quoted) return `rule ${JSON.stringify(rule)} has an unterminated quoted string`;
  if (depth !== 0) return `rule ${JSON.stringify(rule)} has an unbalanced '{'`;
  return undefined;
}

const DATATYPE_RE = /^[a-z][a-z0-9_]*$/;

/** Parts of a concatenated type (`ipv4_addr . inet_service` → 2 parts), or a reason. */
export function parseConcatType(type: string, what: string): string[] | string {
  const parts = type.split('.').map((p) => p.trim());
  for (const p of parts) if (!DATATYPE_RE.test(p)) return `${what} type ${JSON.stringify(type)} is not a data type or a concatenation of data types`;
  return parts;
}

export interface SetTypeInfo {
  keyParts: string[];
  /** For maps: the value's parts; `['verdict']` for verdict maps. */
  valueParts?: string[];
}

export function parseSetType(type: unknown): SetTypeInfo | string {
  if (typeof type !== 'string' || type.trim() === '') return 'set type is missing';
  if (type.includes(':')) return `set type ${JSON.stringify(type)} has a ':' (that is a map)`;
  const keyParts = parseConcatType(type, 'set');
  return typeof keyParts === 'string' ? keyParts : { keyParts };
}

export function parseMapType(type: unknown): SetTypeInfo | string {
  if (typeof type !== 'string' || type.trim() === '') return 'map type is missing';
  const sides = type.split(':');
  if (sides.length !== 2) return `map type ${JSON.stringify(type)} must be "KEY : VALUE"`;
  const keyParts = parseConcatType(sides[0] ?? '', 'map key');
  if (typeof keyParts === 'string') return keyParts;
  const valueParts = parseConcatType(sides[1] ?? '', 'map value');
  if (typeof valueParts === 'string') return valueParts;
  return { keyParts, valueParts };
}

/** Canonical text of a set or map type: parts joined by ` . `, sides by ` : `. */
export function canonicalType(info: SetTypeInfo): string {
  const key = info.keyParts.join(' . ');
  return info.valueParts ? `${key} : ${info.valueParts.join(' . ')}` : key;
}

// Standard priorities (nft(8), "BASE CHAIN PRIORITY"). Names are rendered as
// numbers: older nft releases refuse some names in some hooks.
const PRIO_INET: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };
const PRIO_BRIDGE: Record<string, number> = { dstnat: -300, filter: -200, out: 100, srcnat: 300 };
const PRIO_NETDEV: Record<string, number> = { filter: 0 };
const PRIO_RE = /^([a-z]+)(?:\s*([+-])\s*(\d+))?$/;

export function resolvePriority(family: Family, priority: number | string): number | string {
  if (typeof priority === 'number') {
    if (!Number.isInteger(priority) || priority < -2147483648 || priority > 2147483647) return `priority ${priority} is not a 32-bit integer`;
    return priority;
  }
  if (typeof priority !== 'string') return 'priority must be a number or a name';
  const trimmed = priority.trim();
  if (/^-?\d+$/.test(trimmed)) return resolvePriority(family, Number(trimmed));
  const m = PRIO_RE.exec(trimmed);
  const table = family === 'bridge' ? PRIO_BRIDGE : family === 'netdev' ? PRIO_NETDEV : PRIO_INET;
  const base = m?.[1] === undefined ? undefined : table[m[1]];
  if (!m || base === undefined)
    return `priority ${JSON.stringify(priority)} is not a number or a ${family} priority name (${Object.keys(table).join(', ')}) with an optional +/- offset`;
  const off = m[3] === undefined ? 0 : Number(m[3]) * (m[2] === '-' ? -1 : 1);
  return base + off;
}

const HOOKS_BY_FAMILY: Record<Family, readonly ChainHook[]> = {
  inet: ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress'],
  ip: ['prerouting', 'input', 'forward', 'output', 'postrouting'],
  ip6: ['prerouting', 'input', 'forward', 'output', 'postrouting'],
  bridge: ['prerouting', 'input', 'forward', 'output', 'postrouting'],
  netdev: ['ingress', 'egress'],
};
const HOOKS_BY_TYPE: Record<ChainType, readonly ChainHook[]> = {
  filter: ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress'],
  nat: ['prerouting', 'input', 'output', 'postrouting'],
  route: ['output'],
};

export function checkHook(family: Family, type: ChainType, hook: ChainHook): string | undefined {
  if (!HOOKS_BY_TYPE[type]) return `chain type ${JSON.stringify(type)} is not filter, nat or route`;
  if (!HOOKS_BY_FAMILY[family]?.includes(hook)) return `hook ${JSON.stringify(hook)} does not exist in family ${family}`;
  if (!HOOKS_BY_TYPE[type].includes(hook)) return `a ${type} chain cannot use hook ${hook}`;
  return undefined;
}

export const isVerdictMap = (info: SetTypeInfo): boolean => info.valueParts?.length === 1 && info.valueParts[0] === 'verdict';

/** Device names are sent quoted. */
export function checkDevice(device: unknown): string | undefined {
  if (typeof device !== 'string' || device === '' || bytes(device) > 15 || !/^[A-Za-z0-9_.:@-]+$/.test(device)) {
    return `device ${JSON.stringify(device)} is not an interface name`;
  }
  return undefined;
}
