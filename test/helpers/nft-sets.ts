// One set or map of each element type NetlinkElementWriter encodes, shared by
// its unit test (byte fixtures) and its kernel tests (what the kernel stores,
// read back from nft's JSON listing with elemText).
import { nft } from '../../src/nft/transaction.ts';
import type { TableRef } from '../../src/nft/types.ts';

export const elementSets = (t: TableRef) => ({
  s4: nft.set(t, 's4', 'ipv4_addr'),
  s6: nft.set(t, 's6', 'ipv6_addr'),
  c4: nft.set(t, 'c4', 'ipv4_addr . inet_proto . inet_service'),
  c6: nft.set(t, 'c6', 'ipv6_addr . inet_proto . inet_service'),
  pp: nft.set(t, 'pp', 'inet_proto . inet_service'),
  p: nft.set(t, 'p', 'inet_proto'),
  sv: nft.set(t, 'sv', 'inet_service'),
  m4: nft.map(t, 'm4', 'ipv4_addr : verdict'),
  m6: nft.map(t, 'm6', 'ipv6_addr : verdict'),
});

/** An element of nft's JSON listing as nft text: `10.0.0.1 . tcp . 80`, `10.0.0.1 : goto prof_a`. */
export function elemText(e: unknown): string {
  if (Array.isArray(e)) return `${elemText(e[0])} : ${verdictText(e[1])}`;
  if (typeof e === 'object' && e !== null && 'concat' in e) return (e.concat as unknown[]).map(elemText).join(' . ');
  return String(e);
}

/** nft -j writes verdicts as `{ "accept": null }`, `{ "goto": { "target": "prof_a" } }`. */
function verdictText(v: unknown): string {
  const [[word, arg]] = Object.entries(v as object) as [[string, { target: string } | null]];
  return arg ? `${word} ${arg.target}` : word;
}
