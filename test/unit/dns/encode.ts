// A DNS response encoder for tests (RFC 1035 wire format), with optional
// name compression: the parser's answers are checked against what this
// wrote.
export interface Rec {
  name: string;
  type: 'A' | 'AAAA' | 'CNAME' | 'TXT';
  ttl: number;
  data: string;
}

const TYPES = { A: 1, CNAME: 5, TXT: 16, AAAA: 28 } as const;

function v6bytes(text: string): number[] {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = (head ?? '').split(':').filter((x) => x !== '');
  const t = tail === undefined ? [] : tail.split(':').filter((x) => x !== '');
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

export function encodeResponse(questions: string[], answers: Rec[], opts: { compress?: boolean; id?: number; rcode?: number; tc?: boolean } = {}): Buffer {
  const out: number[] = [];
  const seen = new Map<string, number>();
  const u16 = (v: number) => out.push(v >> 8, v & 0xff);
  const name = (n: string) => {
    const labels = n === '' ? [] : n.replace(/\.$/, '').split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = seen.get(suffix);
      if (opts.compress && at !== undefined) {
        u16(0xc000 | at);
        return;
      }
      if (out.length < 0x3fff) seen.set(suffix, out.length);
      const b = Buffer.from(labels[i] as string, 'latin1');
      out.push(b.length, ...b);
    }
    out.push(0);
  };
  u16(opts.id ?? 0x1234);
  u16(0x8180 | (opts.tc ? 0x0200 : 0) | (opts.rcode ?? 0));
  u16(questions.length);
  u16(answers.length);
  u16(0);
  u16(0);
  for (const q of questions) {
    name(q);
    u16(1);
    u16(1);
  }
  for (const a of answers) {
    name(a.name);
    u16(TYPES[a.type]);
    u16(1);
    out.push((a.ttl >>> 24) & 0xff, (a.ttl >>> 16) & 0xff, (a.ttl >>> 8) & 0xff, a.ttl & 0xff);
    const lenAt = out.length;
    u16(0);
    if (a.type === 'A') out.push(...a.data.split('.').map(Number));
    else if (a.type === 'AAAA') out.push(...v6bytes(a.data));
    else if (a.type === 'CNAME') name(a.data);
    else out.push(a.data.length, ...Buffer.from(a.data));
    const len = out.length - lenAt - 2;
    out[lenAt] = len >> 8;
    out[lenAt + 1] = len & 0xff;
  }
  return Buffer.from(out);
}
