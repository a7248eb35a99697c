// Packets written out by hand, byte for byte, for the unit tests of what
// reads them (the header parser, the nflog packet decoder).

// IPv4 TCP SYN 10.96.250.1:56692 -> 10.96.250.2:81, no options (40 bytes).
export const IPV4_TCP_SYN = `
  45 00 0028  1234 4000  40 06 0000  0a60fa01  0a60fa02
  dd74 0051  7f12c582  00000000  50 02 faf0  0000 0000`;
// IPv6 UDP fd96:250::1:5001 -> fd96:250::2:53, 8 bytes of data (56 bytes).
export const IPV6_UDP = `
  60000000  0010 11 40
  fd960250 00000000 00000000 00000001
  fd960250 00000000 00000000 00000002
  1389 0035 0010 0000  6869 6869 6869 6869`;
