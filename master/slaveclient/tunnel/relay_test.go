package tunnel

import (
	"context"
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
	if dials.Load() != 1 {
		t.Errorf("%d dials for one connection", dials.Load())
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
