package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Direction selects which way of a proxied connection a fault applies to.
type Direction int

const (
	// Up is client → target (master → slave).
	Up Direction = 1 << iota
	// Down is target → client (slave → master).
	Down
	// Both is Up | Down.
	Both = Up | Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both"
	}
	return "none"
}

// Proxy is a TCP proxy on a loopback port that a test puts between a master
// and its slave to pause, cut and resume their connections. Every
// connection it accepts is forwarded to Target on a fresh connection.
//
// A paused direction stops moving bytes (the proxy stops reading from the
// sender, so the kernel's buffers fill and TCP flow control stalls it, as on
// a link that drops everything without resets); Resume lets them through
// again, nothing lost. Cut closes every connection at once, with a reset
// (RST) or an orderly close (FIN), and resets every connection attempted
// until Resume.
//
// A proxy started with StartDelayProxy also holds every chunk it reads for
// a fixed one-way delay before passing it on, each direction on its own
// (a round trip through it takes twice the delay). See StartDelayProxy for
// what that models and what it does not. One started with StartLinkProxy
// also caps each direction at a rate that all its connections share.
type Proxy struct {
	Addr   string
	Target string

	delay time.Duration // one-way, each way (0: none)
	// limits are the shared capacity of each direction (up, down); nil:
	// none.
	limits [2]*rate.Limiter

	ln     net.Listener
	wg     sync.WaitGroup
	closed atomic.Bool

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	paused Direction
	down   bool
	gate   chan struct{} // closed (and replaced) whenever paused changes

	accepted, refused atomic.Int64
	bytes             [2]atomic.Int64 // up, down
}

type proxyConn struct {
	client, server *net.TCPConn
	halves         atomic.Int32  // directions closed in order (EOF passed on)
	gone           chan struct{} // closed when the connection is dropped
}

// StartProxy listens on 127.0.0.1 port 0 and forwards to target. It is
// closed, with every connection it holds, when the test ends. MasterArgs of
// its address carry the TLS flags of target's slave.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return startProxy(t, target, Link{})
}

// StartDelayProxy is StartProxy with a latency: every chunk read from
// either side is written to the other delay after it was read, in order,
// so that a round trip through the proxy takes 2×delay more than on
// loopback. Bandwidth is not limited otherwise: a direction holds up to
// delayQueue chunks (each at most 64 KiB) in flight, far more than gRPC's
// flow-control windows let a sender have outstanding.
//
// It models the latency that application-level round trips see (HTTP/2
// flow-control windows, request/response turns, rsync's protocol), not a
// WAN's TCP: each side's TCP talks to the proxy over loopback, so there is
// no loss, and congestion windows (slow start, recovery) never see the
// delay. An orderly close (FIN) is delayed like data; a reset is passed on
// at once.
func StartDelayProxy(t testing.TB, target string, delay time.Duration) *Proxy {
	t.Helper()
	if delay <= 0 {
		t.Fatalf("StartDelayProxy: delay %s, want > 0", delay)
	}
	return startProxy(t, target, Link{Delay: delay})
}

// Link is what a StartLinkProxy models: a one-way delay each way and a
// capacity per direction.
type Link struct {
	// Delay is the one-way delay, each way (a round trip takes 2×Delay
	// more than on loopback); 0: none.
	Delay time.Duration
	// Rate is the capacity of each direction in bytes per second, shared by
	// every connection through the proxy (0: none).
	Rate int64
}

// RTT is the round trip the link adds.
func (l Link) RTT() time.Duration { return 2 * l.Delay }

// linkBurst is the most a direction of a rate-capped link lets through at
// once: one read of the proxy (a chunk is let through whole).
const linkBurst = 64 << 10

// linkBuffer is the kernel receive buffer of each socket a rate-capped
// proxy reads from: what queues at the link's entrance is then the
// sender's send buffer, this and the one chunk waiting for the rate, not
// the several MiB that loopback's autotuning grows to (which would add a
// queueing delay no WAN router's buffer does).
const linkBuffer = 256 << 10

// StartLinkProxy is StartDelayProxy (delay may be 0) with a capacity: each
// direction lets link.Rate bytes per second through, shared by all the
// proxy's connections as on one link, in the order their chunks were read
// (a chunk waits for the rate first, then for the delay: serialisation,
// then propagation). A sender is held back by TCP flow control while its
// chunk waits, so a bulk transfer queues in its own socket buffers and
// others' chunks still get their turn. What StartDelayProxy says of TCP
// holds here too: no loss, and congestion control never sees the delay or
// the rate.
func StartLinkProxy(t testing.TB, target string, link Link) *Proxy {
	t.Helper()
	if link.Delay < 0 || link.Rate < 0 {
		t.Fatalf("StartLinkProxy: %+v, want a delay and a rate of at least 0", link)
	}
	return startProxy(t, target, link)
}

func startProxy(t testing.TB, target string, link Link) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), Target: target, delay: link.Delay, ln: ln, conns: map[*proxyConn]struct{}{}, gate: make(chan struct{})}
	if link.Rate > 0 {
		for i := range p.limits {
			p.limits[i] = rate.NewLimiter(rate.Limit(link.Rate), linkBurst)
		}
	}
	if c, known := transportOf(target); known {
		register(t, p.Addr, c)
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		client := c.(*net.TCPConn)
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			p.refused.Add(1)
			reset(client)
			continue
		}
		s, err := net.DialTimeout("tcp", p.Target, 5*time.Second)
		if err != nil {
			p.refused.Add(1)
			reset(client)
			continue
		}
		pc := &proxyConn{client: client, server: s.(*net.TCPConn), gone: make(chan struct{})}
		p.mu.Lock()
		if p.down || p.closed.Load() {
			p.mu.Unlock()
			reset(pc.client)
			reset(pc.server)
			continue
		}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.accepted.Add(1)
		if p.limits[0] != nil {
			pc.client.SetReadBuffer(linkBuffer)
			pc.server.SetReadBuffer(linkBuffer)
		}
		if p.delay > 0 {
			p.wg.Add(4)
			for _, d := range []struct {
				from, to *net.TCPConn
				dir      Direction
			}{{pc.client, pc.server, Up}, {pc.server, pc.client, Down}} {
				q := make(chan delayed, delayQueue)
				go p.delayIn(pc, d.from, q, d.dir)
				go p.delayOut(pc, d.to, q, d.dir)
			}
			continue
		}
		p.wg.Add(2)
		go p.pump(pc, pc.client, pc.server, Up)
		go p.pump(pc, pc.server, pc.client, Down)
	}
}

// delayQueue is how many chunks a direction of a StartDelayProxy holds in
// flight: 16 Ki chunks, from 1 GiB of 64 KiB reads down to 16 MiB of 1 KiB
// ones, which no gRPC connection's window (16 MiB in rpc/) exceeds in
// practice.
const delayQueue = 16 << 10

// delayed is a chunk a delaying proxy holds until at; eof stands for the
// sender's FIN.
type delayed struct {
	at  time.Time
	b   []byte
	eof bool
}

// delayIn reads from, stamping each chunk with its release time, into q; it
// ends at EOF (queued too), an error (the connection is reset) or when the
// connection or the proxy is gone.
func (p *Proxy) delayIn(pc *proxyConn, from *net.TCPConn, q chan<- delayed, dir Direction) {
	defer p.wg.Done()
	defer close(q)
	buf := make([]byte, 64<<10)
	for {
		if !p.wait(dir) {
			return
		}
		n, err := from.Read(buf)
		if n > 0 {
			if !p.waitRate(pc, dir, n) {
				return
			}
			c := delayed{at: time.Now().Add(p.delay), b: append([]byte(nil), buf[:n]...)}
			select {
			case q <- c:
			case <-pc.gone:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				select {
				case q <- delayed{at: time.Now().Add(p.delay), eof: true}:
				case <-pc.gone:
				}
				return
			}
			p.drop(pc, true)
			return
		}
	}
}

// delayOut writes each chunk of q to to once its time has come (and its
// direction is not paused), passing the FIN on at the end as pump does.
func (p *Proxy) delayOut(pc *proxyConn, to *net.TCPConn, q <-chan delayed, dir Direction) {
	defer p.wg.Done()
	idx := 0
	if dir == Down {
		idx = 1
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop() // Go ≥ 1.23: no stale tick after Stop, Reset is safe
	defer timer.Stop()
	for c := range q {
		if d := time.Until(c.at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-pc.gone:
				return
			}
		}
		if !p.wait(dir) {
			return
		}
		if c.eof {
			to.CloseWrite()
			if pc.halves.Add(1) == 2 {
				p.drop(pc, false)
			}
			return
		}
		if _, err := to.Write(c.b); err != nil {
			p.drop(pc, true)
			return
		}
		p.bytes[idx].Add(int64(len(c.b)))
	}
}

// pump copies from → to, holding each chunk while dir is paused.
func (p *Proxy) pump(pc *proxyConn, from, to *net.TCPConn, dir Direction) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	idx := 0
	if dir == Down {
		idx = 1
	}
	for {
		if !p.wait(dir) {
			break
		}
		n, err := from.Read(buf)
		if n > 0 {
			if !p.waitRate(pc, dir, n) || !p.wait(dir) {
				break
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				break
			}
			p.bytes[idx].Add(int64(n))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Half-close: pass the FIN on, keep the other way going;
				// the second direction to end closes the connection.
				to.CloseWrite()
				if pc.halves.Add(1) == 2 {
					p.drop(pc, false)
				}
				return
			}
			break
		}
	}
	// Any other failure ends the whole connection; a reset on one side is
	// passed on as a reset on the other.
	p.drop(pc, true)
}

// waitRate holds a chunk of n bytes read in direction dir until the
// link's rate lets it through; false when the connection or the proxy is
// gone meanwhile.
func (p *Proxy) waitRate(pc *proxyConn, dir Direction, n int) bool {
	lim := p.limits[0]
	if dir == Down {
		lim = p.limits[1]
	}
	if lim == nil {
		return true
	}
	d := lim.ReserveN(time.Now(), n).Delay() // n ≤ linkBurst: always granted
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-pc.gone:
		return false
	}
}

// wait blocks while dir is paused; false when the proxy or the connection
// is gone.
func (p *Proxy) wait(dir Direction) bool {
	for {
		p.mu.Lock()
		paused, gate, closed := p.paused&dir != 0, p.gate, p.closed.Load()
		p.mu.Unlock()
		if closed {
			return false
		}
		if !paused {
			return true
		}
		<-gate
	}
}

func (p *Proxy) drop(pc *proxyConn, rst bool) {
	p.mu.Lock()
	_, ok := p.conns[pc]
	delete(p.conns, pc)
	p.mu.Unlock()
	if !ok {
		return
	}
	close(pc.gone)
	if rst {
		reset(pc.client)
		reset(pc.server)
	} else {
		pc.client.Close()
		pc.server.Close()
	}
}

func reset(c *net.TCPConn) {
	c.SetLinger(0) // close sends RST
	c.Close()
}

func (p *Proxy) setPaused(d Direction) {
	p.mu.Lock()
	p.paused = d
	close(p.gate)
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

// Pause stops moving bytes in direction d on every connection, current and
// new, until Resume.
func (p *Proxy) Pause(d Direction) { p.setPaused(d) }

// Cut closes every connection (with RST when rst, else FIN) and resets
// every new one until Resume.
func (p *Proxy) Cut(rst bool) {
	p.mu.Lock()
	p.down = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		p.drop(pc, rst)
	}
}

// Resume ends a Pause or a Cut.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
	p.setPaused(0)
}

// Conns is the number of connections open through the proxy now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Stats returns the connections accepted and forwarded, those reset while
// cut (or whose target was unreachable), and the bytes moved each way.
func (p *Proxy) Stats() (accepted, refused, up, down int64) {
	return p.accepted.Load(), p.refused.Load(), p.bytes[0].Load(), p.bytes[1].Load()
}

// Close stops the proxy and resets every connection it holds.
func (p *Proxy) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.ln.Close()
	p.Cut(true)
	p.setPaused(0) // wake paused pumps: they see closed and drop
	p.wg.Wait()
}
