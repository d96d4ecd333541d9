package rpc

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"

	"google.golang.org/grpc/credentials"
)

// Go's TLS writes every record (16 KiB at most) with a system call of its
// own, so a flush of gRPC's write buffer (ioBuffer) became 16 writes, each
// waking the reader at the other end (the master's rsync relay, then the
// slave). coalescedCredentials gathers the records of one Write of the TLS
// connection and writes them at once.

// maxHeld is the most recordBuffer holds before it writes anyway.
const maxHeld = 2 * ioBuffer

// coalescedCredentials are TLS credentials whose connections write the
// records of one Write with one write of the connection beneath.
type coalescedCredentials struct {
	credentials.TransportCredentials
}

func (c coalescedCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	b := &recordBuffer{Conn: raw}
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, b)
	if err != nil {
		return nil, nil, err
	}
	return &coalescedConn{Conn: conn, buf: b}, info, nil
}

func (c coalescedCredentials) Clone() credentials.TransportCredentials {
	return coalescedCredentials{c.TransportCredentials.Clone()}
}

// coalescedConn is a TLS connection over a recordBuffer: what one Write
// makes reaches the socket when it returns.
type coalescedConn struct {
	net.Conn // the TLS connection
	buf      *recordBuffer
}

func (c *coalescedConn) Write(p []byte) (int, error) {
	c.buf.hold()
	n, err := c.Conn.Write(p)
	if ferr := c.buf.release(); err == nil && ferr != nil {
		// The records are lost: the connection is broken, as after a
		// failed write without the buffer.
		return 0, ferr
	}
	return n, err
}

// SyscallConn is the socket's, as the TLS connection gRPC's credentials
// return offers it.
func (c *coalescedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("rpc: connection has no file descriptor")
}

// recordBuffer is the connection beneath TLS: between hold and release,
// its writes (the records) are kept and written together by release;
// otherwise (the handshake, alerts) they go through at once.
type recordBuffer struct {
	net.Conn
	mu    sync.Mutex
	holds int
	buf   []byte
}

func (b *recordBuffer) hold() {
	b.mu.Lock()
	b.holds++
	b.mu.Unlock()
}

// release ends a hold; the last one writes what was kept.
func (b *recordBuffer) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holds--
	if b.holds > 0 {
		return nil
	}
	return b.flushLocked()
}

func (b *recordBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

func (b *recordBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds == 0 {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		return b.Conn.Write(p)
	}
	if len(b.buf)+len(p) > maxHeld {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, maxHeld)
	}
	if len(p) > maxHeld {
		return b.Conn.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
