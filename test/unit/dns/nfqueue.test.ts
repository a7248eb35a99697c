// nfnetlink_queue messages and the queue rule, byte for byte against the
// kernel's headers (linux/netfilter/nfnetlink_queue.h, nf_tables.h,
// xt_NFQUEUE.h):
//   type = NFNL_SUBSYS_QUEUE (3) << 8 | {PACKET 0, VERDICT 1, CONFIG 2}
//   nfgenmsg { u8 family; u8 version 0; be16 res_id = queue }
//   config: NFQA_CFG_CMD=1 {u8 cmd; u8 pad; be16 pf}, PARAMS=2 {be32 range; u8 mode},
//           QUEUE_MAXLEN=3, MASK=4, FLAGS=5 (be32)
//   packet: NFQA_PACKET_HDR=1 {be32 id; be16 hw_protocol; u8 hook}, PAYLOAD=10
//   verdict: NFQA_VERDICT_HDR=2 {be32 verdict; be32 id}
import { describe, expect, it } from 'vitest';
import { timedElement } from '../../../src/agent/dns-kernel.ts';
import { attr, nlmsg, parseAttrs, parseMessages } from '../../../src/netlink/message.ts';
import {
  decodeQueueDatagram,
  encodeNfqueueConfig,
  NFQUEUE_CONFIG,
  NFQUEUE_PACKET,
  NFQUEUE_VERDICT,
  nfqueueVerdictMessage,
} from '../../../src/netlink/nfqueue.ts';
import { encodeQueueRule, nfqueueTargetInfo } from '../../../src/netlink/nfqueue-rule.ts';

describe('nfqueue messages', () => {
  it('types', () => {
    expect([NFQUEUE_PACKET, NFQUEUE_VERDICT, NFQUEUE_CONFIG]).toEqual([0x300, 0x301, 0x302]);
  });

  it('config: bind with copy range, queue length and FAIL_OPEN (mask and flags)', () => {
    const b = encodeNfqueueConfig(1053, { command: 1, copyRange: 0xffff, maxLen: 1024, flags: 1 });
    expect([...b.subarray(0, 4)]).toEqual([0, 0, 0x04, 0x1d]);
    const a = parseAttrs(b.subarray(4));
    expect([...(a.get(1) ?? [])]).toEqual([1, 0, 0, 0]);
    expect([...(a.get(2) ?? [])]).toEqual([0, 0, 0xff, 0xff, 2]);
    expect(a.get(3)?.readUInt32BE(0)).toBe(1024);
    expect(a.get(4)?.readUInt32BE(0)).toBe(1);
    expect(a.get(5)?.readUInt32BE(0)).toBe(1);
    expect(() => encodeNfqueueConfig(70000, {})).toThrow(/queue/);
  });

  it('verdict: request without ack, queue in res_id, verdict then id', () => {
    const [m] = parseMessages(nfqueueVerdictMessage(1053, 0xdeadbeef, 1, 7));
    expect(m).toMatchObject({ type: 0x301, flags: 1, seq: 7 });
    expect([...(m?.payload.subarray(0, 4) ?? [])]).toEqual([0, 0, 0x04, 0x1d]);
    const hdr = parseAttrs(m?.payload.subarray(4) ?? Buffer.alloc(0)).get(2);
    expect([...(hdr ?? [])]).toEqual([0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
  });

  it('packets of a datagram, others skipped; a packet without its header is skipped', () => {
    const hdr = Buffer.from([0, 0, 0, 42, 0x08, 0x00, 2]);
    const body = Buffer.concat([Buffer.from([2, 0, 0x04, 0x1d]), attr(1, hdr), attr(10, Buffer.from([0x45, 1, 2]))]);
    const dgram = Buffer.concat([nlmsg(0x300, 0, 0, body), nlmsg(2, 0, 9, Buffer.alloc(20)), nlmsg(0x300, 0, 0, Buffer.from([2, 0, 0, 1]))]);
    expect(decodeQueueDatagram(dgram)).toEqual([{ queue: 1053, id: 42, hwProtocol: 0x800, hook: 2, nfproto: 2, payload: Buffer.from([0x45, 1, 2]) }]);
  });
});

describe('the queue rule and timed elements', () => {
  it('xt_NFQ_info_v3: queue, one queue in total, bypass flag', () => {
    expect([...nfqueueTargetInfo(1053, true)]).toEqual([0x1d, 0x04, 1, 0, 1, 0, 0, 0]);
    expect([...nfqueueTargetInfo(1053, false)]).toEqual([0x1d, 0x04, 1, 0, 0, 0, 0, 0]);
  });

  it('NEWRULE appended and acked, with the expressions in order', () => {
    const r = encodeQueueRule({
      family: 'ip',
      table: 'weir_dns',
      chain: 'answers',
      ipFamily: 4,
      protocol: 'udp',
      set: 'subjects',
      queue: 1053,
      bypass: true,
      comment: 'c',
    });
    expect(r.type).toBe((10 << 8) | 6);
    expect(r.flags).toBe(0x4 | 0x400 | 0x800);
    expect(r.body[0]).toBe(2);
    const a = parseAttrs(r.body.subarray(4));
    expect(a.get(1)?.toString()).toBe('weir_dns\0');
    const names: string[] = [];
    const list = a.get(4) ?? Buffer.alloc(0);
    for (const [, e] of iterate(list)) names.push((parseAttrs(e).get(1) ?? Buffer.alloc(0)).toString().replace(/\0.*$/, ''));
    expect(names).toEqual(['meta', 'cmp', 'payload', 'cmp', 'ct', 'cmp', 'payload', 'lookup', 'target']);
    const inet = encodeQueueRule({ family: 'inet', table: 't', chain: 'c', ipFamily: 6, protocol: 'tcp', set: 's', queue: 1, bypass: false });
    expect(inet.body[0]).toBe(1);
    expect(() => encodeQueueRule({ family: 'ip', table: 't', chain: 'c', ipFamily: 4, protocol: 'tcp', set: 's', queue: 70000, bypass: false })).toThrow(
      /queue/,
    );
  });

  it('a timed element carries its key and its timeout in ms (be64)', () => {
    const e = timedElement(4, '203.0.113.9', 30_000);
    const inner = parseAttrs(e.subarray(4));
    expect([...(parseAttrs(inner.get(1) ?? Buffer.alloc(0)).get(1) ?? [])]).toEqual([203, 0, 113, 9]);
    expect(inner.get(4)?.readBigUInt64BE(0)).toBe(30_000n);
  });
});

function* iterate(buf: Buffer): Generator<[number, Buffer]> {
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4) return;
    yield [buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len)];
    off += (len + 3) & ~3;
  }
}
