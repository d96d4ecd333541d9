package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestRelay: bytes written to the relay's socket reach the far end through
// the dialer and come back; Close ends the relayed connections.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var dials atomic.Int32
	r, err := ListenRelay(filepath.Join(t.TempDir(), "tunnel.sock"), func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", r.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("rsync over the relay")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo through the relay: %q, %v", got, err)
	}
	if n := dials.Load(); n < 1 || n > 2 {
		t.Errorf("%d dials for one connection (and the spare for the next)", n)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n, err := c.Read(got); err == nil {
		t.Errorf("read %d bytes after the relay closed, want an error", n)
	}
	if _, err := net.Dial("unix", r.Path()); err == nil {
		t.Error("the relay still accepts after Close")
	}
}

// echoServer accepts on loopback and echoes every connection.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln
}

// echoThrough writes msg through the relay and reads it back.
func echoThrough(t *testing.T, r *Relay, msg string) {
	t.Helper()
	c, err := net.Dial("unix", r.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through the relay: %q, %v", got, err)
	}
}

// TestRelaySpare: the relay dials a connection ahead, which the next tunnel
// uses without waiting for a dial of its own (here the second dial never
// ends: the tunnel works all the same); a spare older than spareMaxAge is
// closed and the tunnel dials.
func TestRelaySpare(t *testing.T) {
	ln := echoServer(t)
	var dials atomic.Int32
	block := make(chan struct{})
	defer close(block)
	r, err := ListenRelay(filepath.Join(t.TempDir(), "tunnel.sock"), func(ctx context.Context) (net.Conn, error) {
		if dials.Add(1) == 2 {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for r.spareReady() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	echoThrough(t, r, "through the spare") // the refill (dial 2) hangs meanwhile
	// The refill is dialled in the background once the spare is taken: it
	// may start after the echo is back.
	for dials.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials, want the spare's and the refill's", n)
	}
}

// TestRelaySpareExpires: a spare older than spareMaxAge is closed, and the
// tunnel dials a connection of its own.
func TestRelaySpareExpires(t *testing.T) {
	defer func(d time.Duration) { spareMaxAge = d }(spareMaxAge)
	spareMaxAge = time.Millisecond
	ln := echoServer(t)
	var dials atomic.Int32
	var first net.Conn
	r, err := ListenRelay(filepath.Join(t.TempDir(), "tunnel.sock"), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if dials.Add(1) == 1 {
			first = c
		}
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for r.spareReady() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	echoThrough(t, r, "not through the stale spare")
	if n := dials.Load(); n < 2 {
		t.Errorf("%d dials: the stale spare was used", n)
	}
	first.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := first.Read(make([]byte, 1)); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("the stale spare is still open: %v", err)
	}
}

// TestRelaySpareReset: a spare the far end has closed since (a slave
// restarted) is not used: the tunnel dials.
func TestRelaySpareReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted.Add(1) == 1 {
				c.Close() // the spare: the far end goes away
				continue
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var dials atomic.Int32
	r, err := ListenRelay(filepath.Join(t.TempDir(), "tunnel.sock"), func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for (r.spareReady() == nil || accepted.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the close reaches the relay's end
	echoThrough(t, r, "not through the closed spare")
}
