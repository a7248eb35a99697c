// Reading an nflog group in kernel tests until the packet sought arrives.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NflogPacket } from '../../src/netlink/nflog.ts';
import type { NflogReader } from '../../src/netlink/nflog-handle.ts';
import { type PacketHeaders, parsePacketHeaders } from '../../src/packet/headers.ts';

/** The IP and transport headers of a logged packet. */
export const headersOf = (p: NflogPacket): PacketHeaders | undefined => parsePacketHeaders(p.payload, p.family);

/** Reads until `pred` matches one of the packets read so far (all of them are returned); throws after `timeoutMs`. */
export async function readUntil(r: NflogReader, pred: (p: NflogPacket) => boolean, timeoutMs = 8000): Promise<NflogPacket[]> {
  const seen: NflogPacket[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Short blocking reads, so the spawned processes' events still get handled.
    seen.push(...r.read(50));
    if (seen.some(pred)) return seen;
    await sleep(10);
  }
  throw new Error(`timed out; read ${seen.length} packets: ${JSON.stringify(seen.map((s) => s.prefix))}`);
}
