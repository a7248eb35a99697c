// One set or map of each element type NetlinkElementWriter encodes, shared by
// its unit test (byte fixtures) and its kernel test (what the kernel stores).
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
