package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Relay is how the rsync tunnels, processes of their own that rsync starts,
// reach the slave through the master: each connection made to its UNIX
// socket is forwarded, byte for byte, to a connection the master dials to
// the slave with its own dialer (the bandwidth limit it shares with its
// gRPC connection), dialled ahead when it can (a spare, at most
// spareMaxAge old, replaced as it is used). The tunnel's TLS and gRPC run end to end through it:
// the relay sees ciphertext only and checks nothing.
type Relay struct {
	path string
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// spare is a connection to the slave dialled ahead, for the next
	// tunnel (one TCP handshake, a round trip on a WAN, less per rsync
	// run), dialled at spareAt; filling is set while one is dialled.
	spare   net.Conn
	spareAt time.Time
	filling bool
}

// spareMaxAge is how long a spare connection waits for a tunnel: well
// within the time a gRPC server gives a connection to start its TLS
// handshake (2 minutes by default). One older is closed, and not replaced
// until a tunnel comes: an idle master keeps no connection open.
var spareMaxAge = 30 * time.Second // a variable for tests

// relayBuffer is what one direction of a relayed connection copies at a
// time.
const relayBuffer = 256 << 10

// ListenRelay listens on the UNIX socket path (a previous one there is
// replaced: the caller owns the directory) and relays every connection to
// one made by dial, until Close.
func ListenRelay(path string, dial func(ctx context.Context) (net.Conn, error)) (*Relay, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("rsync tunnel relay: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rsync tunnel relay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{path: path, ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.accept)
	r.fill()
	return r, nil
}

// fill dials a spare connection in the background unless one is there or
// being dialled.
func (r *Relay) fill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spare != nil || r.filling || r.ctx.Err() != nil {
		return
	}
	r.filling = true
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		c, err := r.dial(ctx)
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.filling = false
		if err != nil {
			return // the tunnel that comes dials itself, and reports why
		}
		if r.ctx.Err() != nil {
			c.Close()
			return
		}
		r.conns[c] = struct{}{}
		r.spare, r.spareAt = c, time.Now()
	})
}

// spareReady returns the spare connection, if one is there (for tests).
func (r *Relay) spareReady() net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spare
}

// take returns the spare connection, nil when there is none young enough
// and still open.
func (r *Relay) take() net.Conn {
	r.mu.Lock()
	c, at := r.spare, r.spareAt
	r.spare = nil
	r.mu.Unlock()
	if c != nil && (time.Since(at) > spareMaxAge || !alive(c)) {
		r.untrack(c)
		return nil
	}
	return c
}

// alive says whether the spare connection c is still open at the far end
// (a slave restarted since it was dialled has reset it): a read finds
// nothing there within a millisecond. The slave sends nothing before the
// tunnel's TLS handshake, so nothing is lost.
func alive(c net.Conn) bool {
	if err := c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return false
	}
	_, err := c.Read(make([]byte, 1))
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Path is the relay's socket, for the tunnel's --via.
func (r *Relay) Path() string { return r.path }

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Go(func() { r.relay(c) })
	}
}

// track adds c to the open connections, or closes it and says false when
// the relay is closing.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// relay forwards local to a new connection to the slave until either side
// ends; then both are closed (gRPC over them needs no half-close). A
// failed dial closes local: the tunnel then reports it as a connection
// error, as it would have without the relay.
func (r *Relay) relay(local net.Conn) {
	if !r.track(local) {
		return
	}
	defer r.untrack(local)
	up := r.take()
	if up == nil {
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		var err error
		up, err = r.dial(ctx)
		cancel()
		if err != nil {
			return
		}
		if !r.track(up) {
			return
		}
	}
	defer r.untrack(up)
	r.fill() // for the next tunnel
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.CopyBuffer(dst, src, make([]byte, relayBuffer))
		done <- struct{}{}
	}
	go pipe(up, local)
	go pipe(local, up)
	<-done
	// The deferred closes end the other copy.
}

// Close stops accepting, closes every relayed connection, waits for the
// relay's goroutines and removes the socket.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.cancel()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.wg.Wait()
	if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}
