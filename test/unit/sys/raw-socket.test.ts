import { describe, expect, it } from 'vitest';
import { parseSockaddr, sockaddr } from '../../../src/sys/raw-socket.ts';

describe('sockaddr', () => {
  it('encodes sockaddr_in and sockaddr_in6', () => {
    expect(sockaddr('10.1.2.3', 80).toString('hex')).toBe('0200' + '0050' + '0a010203' + '0000000000000000');
    const s6 = sockaddr('fd00::1', 0);
    expect(s6.length).toBe(28);
    expect(s6.toString('hex')).toBe('0a00' + '0000' + '00000000' + 'fd000000000000000000000000000001' + '00000000');
  });
  it('decodes what it encodes', () => {
    expect(parseSockaddr(sockaddr('10.1.2.3', 80))).toEqual({ family: 4, address: '10.1.2.3', port: 80 });
    expect(parseSockaddr(sockaddr('fd00::1', 443))).toEqual({ family: 6, address: 'fd00::1', port: 443 });
    expect(parseSockaddr(Buffer.alloc(16))).toBeUndefined();
  });
});
