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
// gRPC connection). The tunnel's TLS and gRPC run end to end through it:
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
}

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
	return r, nil
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
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	up, err := r.dial(ctx)
	cancel()
	if err != nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
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
