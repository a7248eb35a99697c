// The nf_tables rule that sends DNS answers to a queue, encoded for
// NFT_MSG_NEWRULE. Pure bytes; sent in a batch by the agent's DNS module.
//
// Why not nft's `queue` statement: it needs the kernel's nft_queue
// expression, which kernels may leave out (CONFIG_NFT_QUEUE is not set on
// the 6.18 kernel this project runs on), and then the rule fails with
// ENOENT. xtables' NFQUEUE target through nft_compat does the same thing
// and is there wherever iptables-nft works (nft even lists it as
// `queue num N bypass`); libnftables cannot write a compat expression, so
// weir writes this one rule itself.
//
// The rule, for one IP family and one transport protocol:
//   meta l4proto P; th sport 53; ct direction reply; (inet: meta nfproto F;)
//   ip[6] daddr @SET; NFQUEUE (revision 3) num Q, bypass
// `ct direction reply`: only answers to a query the pod itself sent, never
// a packet someone else addresses to it from port 53.

import { NLM_F_ACK, NLM_F_CREATE } from './constants.ts';
import { attr, attrNested, attrString } from './message.ts';
import { NFNL_SUBSYS_NFTABLES, NFPROTO, NFTA_DATA_VALUE, NFTA_LIST_ELEM, type NlRequest } from './nftables.ts';

const NFT_MSG_NEWRULE = 6;
const NLM_F_APPEND = 0x800;
// enum nft_rule_attributes
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_RULE_USERDATA = 7;
// enum nft_expr_attributes
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
// meta, cmp, payload, ct, lookup, target attributes
const NFTA_META_DREG = 1;
const NFTA_META_KEY = 2;
const NFT_META_NFPROTO = 15;
const NFT_META_L4PROTO = 16;
const NFTA_CMP_SREG = 1;
const NFTA_CMP_OP = 2;
const NFTA_CMP_DATA = 3;
const NFT_CMP_EQ = 0;
const NFTA_PAYLOAD_DREG = 1;
const NFTA_PAYLOAD_BASE = 2;
const NFTA_PAYLOAD_OFFSET = 3;
const NFTA_PAYLOAD_LEN = 4;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const NFTA_CT_DREG = 1;
const NFTA_CT_KEY = 2;
const NFT_CT_DIRECTION = 1;
const IP_CT_DIR_REPLY = 1;
const NFTA_LOOKUP_SET = 1;
const NFTA_LOOKUP_SREG = 2;
const NFTA_TARGET_NAME = 1;
const NFTA_TARGET_REV = 2;
const NFTA_TARGET_INFO = 3;
const NFT_REG_1 = 1;
/** xt_NFQUEUE's flags (struct xt_NFQ_info_v3). */
export const NFQ_FLAG_BYPASS = 0x01;

const be32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

const expr = (name: string, ...data: Buffer[]): Buffer => attrNested(NFTA_LIST_ELEM, attrString(NFTA_EXPR_NAME, name), attrNested(NFTA_EXPR_DATA, ...data));
const meta = (key: number): Buffer => expr('meta', attr(NFTA_META_KEY, be32(key)), attr(NFTA_META_DREG, be32(NFT_REG_1)));
const cmpEq = (value: Uint8Array): Buffer =>
  expr('cmp', attr(NFTA_CMP_SREG, be32(NFT_REG_1)), attr(NFTA_CMP_OP, be32(NFT_CMP_EQ)), attrNested(NFTA_CMP_DATA, attr(NFTA_DATA_VALUE, value)));
const payload = (base: number, offset: number, len: number): Buffer =>
  expr(
    'payload',
    attr(NFTA_PAYLOAD_DREG, be32(NFT_REG_1)),
    attr(NFTA_PAYLOAD_BASE, be32(base)),
    attr(NFTA_PAYLOAD_OFFSET, be32(offset)),
    attr(NFTA_PAYLOAD_LEN, be32(len)),
  );

export interface QueueRule {
  /** nft family name of the table (inet, ip, ip6). */
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly ipFamily: 4 | 6;
  readonly protocol: 'udp' | 'tcp';
  /** The set of destination addresses (the pods whose answers are held). */
  readonly set: string;
  readonly queue: number;
  readonly bypass: boolean;
  /** Kept in the rule's user data, where nft shows comments. */
  readonly comment?: string;
}

/** xt_NFQ_info_v3 { u16 queuenum; u16 queues_total; u16 flags } in host order, padded to XT_ALIGN (8). */
export function nfqueueTargetInfo(queue: number, bypass: boolean): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(queue, 0);
  b.writeUInt16LE(1, 2);
  b.writeUInt16LE(bypass ? NFQ_FLAG_BYPASS : 0, 4);
  return b;
}

/** NFT_MSG_NEWRULE appending the queue rule to its chain (acked), for encodeBatch(). */
export function encodeQueueRule(r: QueueRule): NlRequest {
  const family = NFPROTO[r.family];
  if (family === undefined) throw new RangeError(`unknown nft family ${JSON.stringify(r.family)}`);
  if (!Number.isInteger(r.queue) || r.queue < 0 || r.queue > 0xffff) throw new RangeError(`queue ${r.queue} is not 0-65535`);
  const exprs = [
    meta(NFT_META_L4PROTO),
    cmpEq(Uint8Array.of(r.protocol === 'udp' ? 17 : 6)),
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2),
    cmpEq(Uint8Array.of(0, 53)),
    expr('ct', attr(NFTA_CT_KEY, be32(NFT_CT_DIRECTION)), attr(NFTA_CT_DREG, be32(NFT_REG_1))),
    cmpEq(Uint8Array.of(IP_CT_DIR_REPLY)),
    // An inet table sees both families: the address is read only from the right one.
    ...(r.family === 'inet' ? [meta(NFT_META_NFPROTO), cmpEq(Uint8Array.of(r.ipFamily === 4 ? 2 : 10))] : []),
    r.ipFamily === 4 ? payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4) : payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16),
    expr('lookup', attrString(NFTA_LOOKUP_SET, r.set), attr(NFTA_LOOKUP_SREG, be32(NFT_REG_1))),
    expr('target', attrString(NFTA_TARGET_NAME, 'NFQUEUE'), attr(NFTA_TARGET_REV, be32(3)), attr(NFTA_TARGET_INFO, nfqueueTargetInfo(r.queue, r.bypass))),
  ];
  const parts = [
    Buffer.of(family, 0, 0, 0),
    attrString(NFTA_RULE_TABLE, r.table),
    attrString(NFTA_RULE_CHAIN, r.chain),
    attrNested(NFTA_RULE_EXPRESSIONS, ...exprs),
  ];
  if (r.comment !== undefined) parts.push(attr(NFTA_RULE_USERDATA, commentUdata(r.comment)));
  return { type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND, body: Buffer.concat(parts) };
}

/** nft's user data TLV for a comment: type 0 (NFTNL_UDATA_RULE_COMMENT), length, text with its NUL. */
function commentUdata(text: string): Buffer {
  const s = Buffer.from(`${text}\0`, 'utf8').subarray(0, 128);
  return Buffer.concat([Buffer.of(0, s.length), s]);
}
