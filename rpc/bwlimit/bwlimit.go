// Package bwlimit caps what a process sends on its connections: one token
// bucket (golang.org/x/time/rate) shared by every net.Conn wrapped with it,
// so that several connections together stay under one rate, changeable
// while they run. The master wraps every connection it makes to the slave
// with one (bandwidth-limit): its gRPC connection and those of the rsync
// tunnels, which it relays. gsyncd has no counterpart (rsync's --bwlimit
// caps one rsync run, not the session).
package bwlimit

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a bandwidth in bytes per second; 0 is no limit.
type Rate int64

// Min is the smallest limit Parse accepts: below it a keep-alive or one
// batch of entry ops would wait for seconds.
const Min Rate = 1 << 10

// units are the suffixes Parse knows, with their value in bytes (bits are
// an eighth): decimal and binary byte multiples, bits, and rsync's K, M, G
// (binary, as its --bwlimit).
var units = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"bit": 1.0 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
	"kibit": (1 << 10) / 8.0, "mibit": (1 << 20) / 8.0, "gibit": (1 << 30) / 8.0,
}

// Parse reads a bandwidth: a number and a unit, per second ("20MiB/s",
// "500KiB/s", "100Mbit/s", "1.5GB/s", "20M"; the "/s" may be left out, a
// bare number is bytes), or 0, none or off for no limit. Units are read
// without regard to case, bits spelled out: B, KB/MB/GB (10^3 …), KiB/MiB/GiB
// and rsync's K/M/G (2^10 …), bit, Kbit/Mbit/Gbit (10^3 … bits), KiBit….
func Parse(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "", "0", "none", "off":
		return 0, nil
	}
	t = strings.TrimSuffix(t, "/s")
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	mul, ok := units[unit]
	if err != nil || !ok || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bandwidth-limit: %q is not a rate such as 20MiB/s, 500KiB/s or 100Mbit/s, nor none", s)
	}
	r := v * mul
	switch {
	case r == 0:
		return 0, nil
	case r < float64(Min):
		return 0, fmt.Errorf("bandwidth-limit: %q is below the least of %s (or none)", s, Min)
	case r > math.MaxInt64/2:
		return 0, fmt.Errorf("bandwidth-limit: %q is too large (none: no limit)", s)
	}
	return Rate(math.Round(r)), nil
}

// String formats r in the largest unit that states it exactly (MiB/s,
// KiB/s, Mbit/s, kbit/s, B/s), "none" for no limit.
func (r Rate) String() string {
	if r <= 0 {
		return "none"
	}
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB/s", 1 << 30}, {"MiB/s", 1 << 20}, {"Gbit/s", 1e9 / 8}, {"Mbit/s", 1e6 / 8}, {"KiB/s", 1 << 10}, {"kbit/s", 1e3 / 8}} {
		if int64(r)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(r)/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB/s", int64(r))
}

// burst is how many bytes the bucket of r holds: 50 ms of the rate, at
// least 16 KiB (a TLS record) and at most 1 MiB; what a connection may send
// at once beyond the rate after a pause.
func burst(r Rate) int {
	return int(min(max(int64(r)/20, 16<<10), 1<<20))
}

// Limiter is one token bucket shared by the connections it wraps. A nil
// *Limiter limits nothing.
type Limiter struct {
	// l is the bucket in force, nil for no limit; SetRate replaces it (a
	// new one starts full), so that a rate and its burst always go
	// together.
	l    atomic.Pointer[rate.Limiter]
	r    atomic.Int64
	sent atomic.Int64
}

// New returns a limiter of rate r (0: none, changeable later).
func New(r Rate) *Limiter {
	l := &Limiter{}
	l.SetRate(r)
	return l
}

// SetRate changes the rate of every connection wrapped, at once: a write
// waiting for tokens under the old rate finishes its wait (at most one
// burst of the old rate).
func (l *Limiter) SetRate(r Rate) {
	r = max(r, 0)
	var b *rate.Limiter
	if r > 0 {
		b = rate.NewLimiter(rate.Limit(r), burst(r))
	}
	l.l.Store(b)
	l.r.Store(int64(r))
}

// Rate is the rate in force.
func (l *Limiter) Rate() Rate {
	if l == nil {
		return 0
	}
	return Rate(l.r.Load())
}

// Sent is how many bytes the wrapped connections have written.
func (l *Limiter) Sent() int64 {
	if l == nil {
		return 0
	}
	return l.sent.Load()
}

// Conn wraps c: its writes wait for the shared bucket's tokens, a burst at
// a time. Reads are not limited. A nil Limiter returns c.
func (l *Limiter) Conn(c net.Conn) net.Conn {
	if l == nil {
		return c
	}
	return &conn{Conn: c, l: l, closed: make(chan struct{})}
}

// take waits until up to n bytes may be sent and returns how many (at
// least 1 when n > 0), or 0 when done is closed first.
func (l *Limiter) take(n int, done <-chan struct{}) int {
	b := l.l.Load()
	if b == nil {
		return n
	}
	k := min(n, b.Burst())
	res := b.ReserveN(time.Now(), k) // k ≤ burst: always granted
	d := res.Delay()
	if d <= 0 {
		return k
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return k
	case <-done:
		res.Cancel()
		return 0
	}
}

// errClosed is the error of a write cut short by Close.
var errClosed = errors.New("bwlimit: write on a closed connection")

type conn struct {
	net.Conn
	l         *Limiter
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *conn) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		k := c.l.take(len(p), c.closed)
		if k == 0 {
			return n, errClosed
		}
		m, err := c.Conn.Write(p[:k])
		n += m
		c.l.sent.Add(int64(m))
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// spliceChunk is how much ReadFrom hands the connection's own ReadFrom at
// a time while no limit is in force: a limit set meanwhile applies after at
// most that much more.
const spliceChunk = 1 << 20

// copyBuffer is the buffer of a ReadFrom under a limit.
const copyBuffer = 256 << 10

// ReadFrom copies r to the connection until r ends (io.Copy uses it). While
// no limit is in force it goes through the wrapped connection's ReadFrom,
// spliceChunk at a time: for a TCP connection and a socket r (the master's
// rsync relay) Linux's splice, which moves the bytes without copying them
// through this process. Under a limit, it writes what it reads with Write.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	rf, canSplice := c.Conn.(io.ReaderFrom)
	var total int64
	var buf []byte
	for {
		if canSplice && c.l.l.Load() == nil {
			lr := &io.LimitedReader{R: r, N: spliceChunk}
			n, err := rf.ReadFrom(lr)
			total += n
			c.l.sent.Add(n)
			if err != nil {
				return total, err
			}
			if lr.N > 0 { // r ended
				return total, nil
			}
			continue
		}
		if buf == nil {
			buf = make([]byte, copyBuffer)
		}
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := c.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// WriteTo copies what the connection reads to w until it ends, through the
// wrapped connection's WriteTo when it has one (reads are not limited; for
// a TCP connection and a socket w, splice).
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
