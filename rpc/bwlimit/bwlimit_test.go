package bwlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		str  string
	}{
		{"none", 0, "none"}, {"0", 0, "none"}, {"off", 0, "none"}, {"", 0, "none"}, {"0MiB/s", 0, "none"},
		{"20MiB/s", 20 << 20, "20MiB/s"}, {"500KiB/s", 500 << 10, "500KiB/s"}, {"500kib/s", 500 << 10, "500KiB/s"},
		{"100Mbit/s", 12500000, "100Mbit/s"}, {"400mbit", 50000000, "400Mbit/s"}, {"1Gbit/s", 125000000, "1Gbit/s"},
		{"1.5MiB/s", 1536 << 10, "1536KiB/s"}, {"20M", 20 << 20, "20MiB/s"}, {"64k", 64 << 10, "64KiB/s"},
		{"1MB/s", 1000000, "8Mbit/s"}, {"4096", 4096, "4KiB/s"}, {"2000B/s", 2000, "16kbit/s"}, {" 2 GiB/s ", 2 << 30, "2GiB/s"},
		{"1234567", 1234567, "1234567B/s"},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("Parse(%q) = %d (%s), %v; want %d (%s)", tc.in, got, got, err, tc.want, tc.str)
			continue
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(%q) = %d, %v: String does not read back", got.String(), back, err)
		}
	}
	for _, in := range []string{"fast", "-1MiB/s", "20 MiB per second", "10XB/s", "100", "1e400", "NaN", "5mbps"} {
		if r, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, r)
		} else if !strings.Contains(err.Error(), "bandwidth-limit") {
			t.Errorf("Parse(%q): %v does not name the key", in, err)
		}
	}
}

// sink is a connection whose far end discards everything.
func sink(t *testing.T) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go io.Copy(io.Discard, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}

// send writes total bytes over each of conns at once, in writes of 256
// KiB, and returns how long that took.
func send(t *testing.T, conns []net.Conn, total int) time.Duration {
	t.Helper()
	buf := make([]byte, 256<<10)
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			for left := total; left > 0; left -= len(buf) {
				if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// TestSharedRate: two connections of one limiter share its rate: their
// bytes together over the time taken stay under the rate (with one burst
// allowed) and not far below it.
func TestSharedRate(t *testing.T) {
	const r = 4 << 20
	l := New(r)
	conns := []net.Conn{l.Conn(sink(t)), l.Conn(sink(t))}
	const each = 1 << 20
	d := send(t, conns, each)
	got := float64(2*each) / d.Seconds()
	if allowed := float64(r) + float64(burst(r))/d.Seconds(); got > allowed {
		t.Errorf("sent %.0f B/s over %s, above the limit %d B/s and one burst (%.0f B/s)", got, d, r, allowed)
	}
	if got < r/2 {
		t.Errorf("sent %.0f B/s over %s, under half the limit %d B/s", got, d, r)
	}
	if l.Sent() != 2*each {
		t.Errorf("Sent = %d, want %d", l.Sent(), 2*each)
	}
}

// TestSetRate: a limit set while connections are open applies to them,
// and none lifts it.
func TestSetRate(t *testing.T) {
	l := New(0)
	c := l.Conn(sink(t))
	if d := send(t, []net.Conn{c}, 8<<20); d > 2*time.Second {
		t.Errorf("8 MiB without a limit took %s", d)
	}
	l.SetRate(2 << 20)
	if l.Rate() != 2<<20 {
		t.Fatalf("Rate = %s", l.Rate())
	}
	d := send(t, []net.Conn{c}, 1<<20)
	if got := float64(1<<20) / d.Seconds(); got > float64(2<<20)+float64(burst(2<<20))/d.Seconds() || got < 1<<20 {
		t.Errorf("1 MiB at 2MiB/s: %.0f B/s over %s", got, d)
	}
	l.SetRate(0)
	if d := send(t, []net.Conn{c}, 8<<20); d > 2*time.Second {
		t.Errorf("8 MiB with the limit lifted took %s", d)
	}
}

// TestCloseEndsWait: a write waiting for tokens ends when its connection
// is closed.
func TestCloseEndsWait(t *testing.T) {
	l := New(Min)
	c := l.Conn(sink(t))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(make([]byte, 1<<20)); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("write of 1 MiB at 1 KiB/s returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still waiting 5 s after Close")
	}
}

// relayPair returns the two ends of a unix socket and of a TCP connection
// on loopback, small socket buffers on the TCP one so that little can hide
// in the kernel.
func relayPair(t *testing.T) (unixIn, unixOut net.Conn, tcpIn *net.TCPConn, tcpOut net.Conn) {
	t.Helper()
	pair := func(network, addr string) (net.Conn, net.Conn) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		acc := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
			}
			acc <- c
		}()
		d, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a := <-acc
		t.Cleanup(func() { d.Close(); a.Close() })
		return d, a
	}
	ui, uo := pair("unix", t.TempDir()+"/s")
	ti, to := pair("tcp", "127.0.0.1:0")
	for _, c := range []net.Conn{ti, to} {
		c.(*net.TCPConn).SetWriteBuffer(64 << 10)
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
	}
	return ui, uo, ti.(*net.TCPConn), to
}

// pattern is the byte at offset i of what the relay tests send.
func pattern(i int64) byte { return byte(i*131 + i>>16) }

// receive reads c to its end, checking every byte against pattern, and
// counts them in n.
func receive(c net.Conn, n *atomic.Int64) error {
	buf := make([]byte, 64<<10)
	for {
		k, err := c.Read(buf)
		for i := range k {
			if off := n.Load() + int64(i); buf[i] != pattern(off) {
				return fmt.Errorf("byte %d is %#x, want %#x", off, buf[i], pattern(off))
			}
		}
		n.Add(int64(k))
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// produce writes pattern to c until stop is closed and at least min bytes
// are written, then closes c.
func produce(c net.Conn, min int64, stop <-chan struct{}) error {
	defer c.Close()
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		select {
		case <-stop:
			if off >= min {
				return nil
			}
		default:
		}
		for i := range buf {
			buf[i] = pattern(off + int64(i))
		}
		k, err := c.Write(buf)
		off += int64(k)
		if err != nil {
			return err
		}
	}
}

// TestReadFromRelays: a wrapped TCP connection's ReadFrom (what io.Copy,
// hence the master's rsync relay, uses) copies a socket byte for byte,
// counts what it sent, and applies a limit set while it runs after at most
// spliceChunk more; a limit lifted lets the rest through.
func TestReadFromRelays(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit bool
	}{{"no limit", false}, {"limit set and lifted while copying", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ui, uo, ti, to := relayPair(t)
			l := New(0)
			lc := l.Conn(ti)
			if _, ok := lc.(io.ReaderFrom); !ok {
				t.Fatal("the wrapped connection has no ReadFrom")
			}
			copied := make(chan error, 1)
			var copiedN int64
			go func() {
				n, err := io.Copy(lc, uo)
				copiedN = n
				ti.CloseWrite() // the receiver sees the end
				copied <- err
			}()
			var got atomic.Int64
			received := make(chan error, 1)
			go func() { received <- receive(to, &got) }()
			stop := make(chan struct{})
			produced := make(chan error, 1)
			const total = 32 << 20
			go func() { produced <- produce(ui, total, stop) }()
			if tc.limit {
				for got.Load() < 4<<20 {
					time.Sleep(time.Millisecond)
				}
				const limit = 64 << 10
				l.SetRate(limit)
				at := got.Load()
				time.Sleep(500 * time.Millisecond)
				// After the limit: what the copy had in flight (one
				// chunk), the sockets' buffers (64 KiB asked, doubled by
				// the kernel, both ends), one burst and the rate's.
				if extra := got.Load() - at; extra > spliceChunk+4*128<<10+int64(burst(limit))+limit/2 {
					t.Errorf("%d bytes arrived in 500 ms after a limit of %s was set", extra, Rate(limit))
				}
				l.SetRate(0)
			}
			close(stop)
			if err := <-produced; err != nil {
				t.Fatal(err)
			}
			if err := <-copied; err != nil {
				t.Fatal(err)
			}
			if err := <-received; err != nil {
				t.Fatal(err)
			}
			if got.Load() != copiedN || got.Load() < total || l.Sent() != copiedN {
				t.Errorf("received %d bytes, copied %d, Sent %d, want %d or more of each, equal", got.Load(), copiedN, l.Sent(), total)
			}
		})
	}
}
