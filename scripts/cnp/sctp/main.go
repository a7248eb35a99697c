// Command sctp sets up SCTP associations at the packet level, over raw IP
// sockets, for a kernel built without SCTP sockets (no /proc/sys/net/sctp).
// The conformance suite's pods serve SCTP with `agnhost porter` and probe it
// with `agnhost connect --protocol=sctp`; both need SCTP sockets. On such a
// kernel the suite's image runs this instead (scripts/cnp/agnhost-image), so
// the probes still cross the network as real SCTP packets: the four-way
// handshake (INIT, INIT ACK, COOKIE ECHO, COOKIE ACK) with correct
// verification tags and CRC32c checksums, which conntrack tracks and
// nftables matches like any other SCTP association. What it does not do is
// carry data: a probe only asks whether an association can be set up.
//
//	sctp serve PORT...                               answer associations to these ports
//	sctp connect [--timeout=D] [--protocol=sctp] HOST:PORT
//
// connect keeps agnhost connect's contract, which the suite reads: nothing on
// stderr when the association is up; "TIMEOUT" on stderr when no answer came
// in time, "REFUSED" when the peer aborted.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	protoSCTP = 132

	chunkInit       = 1
	chunkInitAck    = 2
	chunkAbort      = 6
	chunkCookieEcho = 10
	chunkCookieAck  = 11

	paramStateCookie = 7
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packet is one SCTP packet: the common header and its first chunk.
type packet struct {
	src, dst  uint16
	vtag      uint32
	chunkType byte
	chunk     []byte // the first chunk's value (after type, flags and length)
	from      net.IP
}

// encode builds an SCTP packet of one chunk. The checksum is CRC32c over the
// whole packet with the field zeroed, stored least significant byte first
// (RFC 9260, appendix A; Linux writes it the same way).
func encode(src, dst uint16, vtag uint32, chunkType byte, value []byte) []byte {
	n := 4 + len(value)
	b := make([]byte, 12+n+(4-n%4)%4)
	binary.BigEndian.PutUint16(b[0:], src)
	binary.BigEndian.PutUint16(b[2:], dst)
	binary.BigEndian.PutUint32(b[4:], vtag)
	b[12] = chunkType
	binary.BigEndian.PutUint16(b[14:], uint16(n))
	copy(b[16:], value)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoli))
	return b
}

func decode(b []byte, from net.IP) (packet, bool) {
	if len(b) < 16 {
		return packet{}, false
	}
	n := int(binary.BigEndian.Uint16(b[14:]))
	if n < 4 || 12+n > len(b) {
		return packet{}, false
	}
	return packet{
		src:       binary.BigEndian.Uint16(b[0:]),
		dst:       binary.BigEndian.Uint16(b[2:]),
		vtag:      binary.BigEndian.Uint32(b[4:]),
		chunkType: b[12],
		chunk:     b[16 : 12+n],
		from:      from,
	}, true
}

// initValue is the fixed part of INIT and INIT ACK: our tag, a window, one
// stream each way, a first TSN; then the parameters.
func initValue(tag uint32, params []byte) []byte {
	v := make([]byte, 16, 16+len(params))
	binary.BigEndian.PutUint32(v[0:], tag)
	binary.BigEndian.PutUint32(v[4:], 65535)
	binary.BigEndian.PutUint16(v[8:], 1)
	binary.BigEndian.PutUint16(v[10:], 1)
	binary.BigEndian.PutUint32(v[12:], randomTag())
	return append(v, params...)
}

func param(kind uint16, value []byte) []byte {
	p := make([]byte, 4+len(value))
	binary.BigEndian.PutUint16(p[0:], kind)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[4:], value)
	return p
}

// findParam returns the value of the first parameter of this kind after an
// INIT ACK's fixed part.
func findParam(v []byte, kind uint16) []byte {
	for o := 16; o+4 <= len(v); {
		n := int(binary.BigEndian.Uint16(v[o+2:]))
		if n < 4 || o+n > len(v) {
			return nil
		}
		if binary.BigEndian.Uint16(v[o:]) == kind {
			return v[o+4 : o+n]
		}
		o += n + (4-n%4)%4
	}
	return nil
}

// A tag is never 0: 0 is the verification tag of an INIT itself.
func randomTag() uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		if t := binary.BigEndian.Uint32(b[:]); t != 0 {
			return t
		}
	}
}

// rawSocket is a raw IP socket of one family for protocol SCTP. Having one
// open also keeps the kernel from answering SCTP packets with "protocol
// unreachable", as it does when nobody takes them. One goroutine uses a
// socket, so its receive buffer is allocated once, with the socket.
type rawSocket struct {
	fd  int
	v6  bool
	buf []byte
}

func openRaw(v6 bool) (*rawSocket, error) {
	family := syscall.AF_INET
	if v6 {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_RAW, protoSCTP)
	if err != nil {
		return nil, err
	}
	return &rawSocket{fd: fd, v6: v6, buf: make([]byte, 65536)}, nil
}

func (s *rawSocket) send(to net.IP, b []byte) error {
	if s.v6 {
		sa := &syscall.SockaddrInet6{}
		copy(sa.Addr[:], to.To16())
		return syscall.Sendto(s.fd, b, 0, sa)
	}
	sa := &syscall.SockaddrInet4{}
	copy(sa.Addr[:], to.To4())
	return syscall.Sendto(s.fd, b, 0, sa)
}

// recv returns the next SCTP packet, or an error when the deadline passed. An
// IPv4 raw socket hands over the IP header too; an IPv6 one does not. The
// packet's chunk lies in the socket's buffer: the next recv overwrites it.
func (s *rawSocket) recv(deadline time.Time) (packet, error) {
	buf := s.buf
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return packet{}, os.ErrDeadlineExceeded
		}
		tv := syscall.NsecToTimeval(left.Nanoseconds())
		if err := syscall.SetsockoptTimeval(s.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
			return packet{}, err
		}
		n, sa, err := syscall.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return packet{}, err
		}
		b := buf[:n]
		var from net.IP
		switch a := sa.(type) {
		case *syscall.SockaddrInet4:
			from = net.IP(a.Addr[:])
			if n < 20 || int(b[0]&0x0f)*4 > n {
				continue
			}
			b = b[int(b[0]&0x0f)*4:]
		case *syscall.SockaddrInet6:
			from = net.IP(a.Addr[:])
		}
		if p, ok := decode(b, from); ok {
			return p, nil
		}
	}
}

// serverTag is the tag the server gives the association an INIT asks for,
// the same for a retransmitted INIT: whichever copy of the INIT ACK the client
// and conntrack each act on, they then agree on the tag the COOKIE ECHO
// carries. (Drawing a new tag per INIT once left an IPv6 association in
// COOKIE_WAIT in conntrack, though the client had set it up.)
func serverTag(secret []byte, p packet, peer uint32) uint32 {
	b := append(append([]byte(nil), secret...), p.from...)
	b = binary.BigEndian.AppendUint32(b, peer)
	b = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, p.src), p.dst)
	if t := crc32.Checksum(b, castagnoli); t != 0 {
		return t
	}
	return 1
}

// serve answers, without keeping state, every association set up to one of
// the ports: an INIT gets an INIT ACK whose cookie holds both tags, and a
// COOKIE ECHO carrying such a cookie gets its COOKIE ACK.
func serve(s *rawSocket, ports map[uint16]bool) error {
	secret := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, randomTag()), randomTag())
	for {
		p, err := s.recv(time.Now().Add(time.Hour))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		if !ports[p.dst] {
			continue
		}
		switch {
		case p.chunkType == chunkInit && p.vtag == 0 && len(p.chunk) >= 16:
			peer := binary.BigEndian.Uint32(p.chunk[0:])
			ours := serverTag(secret, p, peer)
			cookie := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, ours), peer)
			err = s.send(p.from, encode(p.dst, p.src, peer, chunkInitAck, initValue(ours, param(paramStateCookie, cookie))))
		case p.chunkType == chunkCookieEcho && len(p.chunk) == 8 && binary.BigEndian.Uint32(p.chunk[0:]) == p.vtag:
			err = s.send(p.from, encode(p.dst, p.src, binary.BigEndian.Uint32(p.chunk[4:]), chunkCookieAck, nil))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "sctp serve: answering %s: %v\n", p.from, err)
		}
	}
}

var errRefused = errors.New("REFUSED")

// connect sets up one association and aborts it at once. The INIT is sent
// again every second while no INIT ACK came, as an SCTP stack would.
func connect(host net.IP, port uint16, timeout time.Duration) error {
	s, err := openRaw(host.To4() == nil)
	if err != nil {
		return err
	}
	defer syscall.Close(s.fd)
	deadline := time.Now().Add(timeout)
	local := uint16(32768 + randomTag()%28232)
	ours := randomTag()
	var peer uint32
	var cookie []byte
	for cookie == nil {
		if err := s.send(host, encode(local, port, 0, chunkInit, initValue(ours, nil))); err != nil {
			return err
		}
		resend := time.Now().Add(time.Second)
		if resend.After(deadline) {
			resend = deadline
		}
		for cookie == nil {
			p, err := s.recv(resend)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if time.Now().After(deadline) {
					return err
				}
				break
			}
			if err != nil {
				return err
			}
			if !p.from.Equal(host) || p.src != port || p.dst != local || p.vtag != ours {
				continue
			}
			if p.chunkType == chunkAbort {
				return errRefused
			}
			if p.chunkType == chunkInitAck && len(p.chunk) >= 16 {
				peer = binary.BigEndian.Uint32(p.chunk[0:])
				// A copy: the COOKIE ECHO's wait reads into the buffer the cookie lies in.
				cookie = bytes.Clone(findParam(p.chunk, paramStateCookie))
			}
		}
	}
	if err := s.send(host, encode(local, port, peer, chunkCookieEcho, cookie)); err != nil {
		return err
	}
	for {
		p, err := s.recv(deadline)
		if err != nil {
			return err
		}
		if !p.from.Equal(host) || p.src != port || p.dst != local || p.vtag != ours {
			continue
		}
		switch p.chunkType {
		case chunkAbort:
			return errRefused
		case chunkCookieAck:
			// Up. Abort it, so that conntrack forgets it and the server keeps nothing.
			return s.send(host, encode(local, port, peer, chunkAbort, nil))
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sctp serve PORT... | sctp connect [--timeout=D] [--protocol=sctp] HOST:PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(mainServe(os.Args[2:]))
	case "connect":
		os.Exit(mainConnect(os.Args[2:]))
	}
	fmt.Fprintf(os.Stderr, "sctp: unknown command %q\n", os.Args[1])
	os.Exit(2)
}

func mainServe(args []string) int {
	ports := map[uint16]bool{}
	for _, a := range args {
		p, err := strconv.ParseUint(a, 10, 16)
		if err != nil || p == 0 {
			fmt.Fprintf(os.Stderr, "sctp serve: bad port %q\n", a)
			return 2
		}
		ports[uint16(p)] = true
	}
	done := make(chan error, 2)
	opened := 0
	for _, v6 := range []bool{false, true} {
		s, err := openRaw(v6)
		if err != nil {
			// A pod without IPv6 serves IPv4 alone.
			if v6 {
				continue
			}
			fmt.Fprintf(os.Stderr, "sctp serve: %v\n", err)
			return 1
		}
		opened++
		go func() { done <- serve(s, ports) }()
	}
	fmt.Fprintf(os.Stderr, "sctp serve: answering SCTP associations to ports %s over raw sockets (this kernel has no SCTP sockets)\n", strings.Join(args, " "))
	err := <-done
	fmt.Fprintf(os.Stderr, "sctp serve: %v\n", err)
	return 1
}

func mainConnect(args []string) int {
	timeout := 5 * time.Second
	target := ""
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--timeout="):
			d, err := time.ParseDuration(strings.TrimPrefix(a, "--timeout="))
			if err != nil {
				fmt.Fprintf(os.Stderr, "sctp connect: bad timeout %q\n", a)
				return 2
			}
			timeout = d
		case a == "--protocol=sctp":
		case strings.HasPrefix(a, "--"):
			fmt.Fprintf(os.Stderr, "sctp connect: unknown option %q\n", a)
			return 2
		default:
			target = a
		}
	}
	host, portText, err := net.SplitHostPort(target)
	ip := net.ParseIP(host)
	port, perr := strconv.ParseUint(portText, 10, 16)
	if err != nil || ip == nil || perr != nil || port == 0 {
		fmt.Fprintf(os.Stderr, "sctp connect: want IP:PORT, got %q\n", target)
		return 2
	}
	switch err := connect(ip, uint16(port), timeout); {
	case err == nil:
		return 0
	case errors.Is(err, os.ErrDeadlineExceeded):
		fmt.Fprintln(os.Stderr, "TIMEOUT")
	case errors.Is(err, errRefused):
		fmt.Fprintln(os.Stderr, "REFUSED")
	default:
		fmt.Fprintf(os.Stderr, "OTHER: %v\n", err)
	}
	return 1
}
