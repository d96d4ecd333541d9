package rpc

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes made on it.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestCoalescedWrites: through the master's TLS credentials (a real
// handshake with the slave's on loopback), one Write of the connection
// reaches the socket as one write of the records it makes, or a few when it
// is larger than maxHeld, and the slave reads every byte.
func TestCoalescedWrites(t *testing.T) {
	slave, masters := tlsPair(t, "georep-master")
	serverCreds, err := serverCredentials(ServerConfig{TLS: slave})
	if err != nil {
		t.Fatal(err)
	}
	clientCreds, err := clientCredentials(masters["georep-master"], false, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	received := make(chan []byte, 1)
	go func() {
		raw, err := lis.Accept()
		if err != nil {
			t.Error(err)
			received <- nil
			return
		}
		defer raw.Close()
		conn, _, err := serverCreds.ServerHandshake(raw)
		if err != nil {
			t.Error(err)
			received <- nil
			return
		}
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Error(err)
		}
		received <- b
	}()
	d, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw := &countingConn{Conn: d}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := clientCreds.ClientHandshake(ctx, "127.0.0.1", raw)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, tc := range []struct {
		size      int
		maxWrites int64
	}{
		{1, 1}, {16 << 10, 1}, {ioBuffer, 1}, {maxHeld - 4096, 1}, {4 * maxHeld, 5},
	} {
		p := make([]byte, tc.size)
		for i := range p {
			p[i] = byte(len(want) + i*7)
		}
		before := raw.writes.Load()
		if n, err := conn.Write(p); err != nil || n != len(p) {
			t.Fatalf("Write of %d bytes: %d, %v", len(p), n, err)
		}
		if w := raw.writes.Load() - before; w < 1 || w > tc.maxWrites {
			t.Errorf("Write of %d bytes: %d writes on the socket, want 1 to %d", tc.size, w, tc.maxWrites)
		}
		want = append(want, p...)
	}
	conn.Close()
	if got := <-received; !bytes.Equal(got, want) {
		t.Errorf("the slave read %d bytes, want %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
	}
}
