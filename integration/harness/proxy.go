package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
type Proxy struct {
	Addr   string
	Target string

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
	halves         atomic.Int32 // directions closed in order (EOF passed on)
}

// StartProxy listens on 127.0.0.1 port 0 and forwards to target. It is
// closed, with every connection it holds, when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), Target: target, ln: ln, conns: map[*proxyConn]struct{}{}, gate: make(chan struct{})}
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
		pc := &proxyConn{client: client, server: s.(*net.TCPConn)}
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
		p.wg.Add(2)
		go p.pump(pc, pc.client, pc.server, Up)
		go p.pump(pc, pc.server, pc.client, Down)
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
			if !p.wait(dir) {
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
