// One HTTP/1.1 exchange over a unix socket, written byte for byte, so the
// fuzzer can send what no well-behaved client would (bad methods, targets,
// header names, framing). The client half-closes after writing, as a client
// that has nothing more to send does: a request cut short then ends at EOF
// (which the server must answer) instead of waiting out the server's
// header timeout.
import net from 'node:net';

export interface RawReply {
  status: number;
  headers: string;
  body: Buffer;
}

export type RawOutcome = RawReply | 'timeout' | 'closed';

/** The first final (non-1xx) response in `all`, or undefined when there is none. */
export function parseReply(all: Buffer): RawReply | undefined {
  let at = 0;
  for (;;) {
    const end = all.indexOf('\r\n\r\n', at);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(all.toString('latin1', at, at + 16));
    if (end < 0 || !m) return undefined;
    const status = Number(m[1]);
    const headers = all.toString('latin1', at, end);
    // The body is what content-length says: after it the server may answer
    // again, when the bytes after a request it answered are themselves bad.
    const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
    if (status >= 200) return { status, headers, body: all.subarray(end + 4, length ? end + 4 + Number(length[1]) : undefined) };
    at = end + 4;
  }
}

export function rawRequest(socketPath: string, bytes: Buffer, timeoutMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('timeout');
    }, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(parseReply(Buffer.concat(chunks)) ?? 'closed');
    });
    sock.end(bytes);
  });
}

/** The JSON `error` string of a reply, or why there is none. */
export function jsonError(r: RawReply): { error: string } | { problem: string } {
  const text = r.body.toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: `${r.status} without a JSON body: ${JSON.stringify(r.body.toString('latin1').slice(0, 100))}` };
  }
  const error = (v as { error?: unknown } | null)?.error;
  return typeof error === 'string' && error !== '' ? { error } : { problem: `${r.status} JSON body has no "error" string: ${text.slice(0, 100)}` };
}
