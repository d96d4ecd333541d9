package master

import (
	"context"
	"errors"
	"fmt"

	"github.com/georep/georep/master/slaveclient"
	"github.com/georep/georep/rpc/ops"
)

// opBatch is one batch of an ordered pipeline: entry ops or meta ops.
type opBatch struct {
	entries []ops.Entry
	metas   []ops.Meta
}

func (b opBatch) len() int { return len(b.entries) + len(b.metas) }

// batchPipe is an ordered pipeline of batches to the slave: each batch is
// applied after every batch sent before it, and recv returns the answers
// in the order sent. One goroutine sends (send, closeSend) while another
// receives; close releases it, whatever state it is in.
type batchPipe interface {
	send(opBatch) error
	closeSend() error
	recv() ([]ops.Failure, error)
	close()
}

// pipeliner is a slave that applies a pipeline of batches without a round
// trip per batch: the session client when the slave has the Apply stream
// (ok false: it has not, use a serialPipe).
type pipeliner interface {
	pipeline(ctx context.Context) (p batchPipe, ok bool, err error)
	// pipelines says whether pipeline gives the stream.
	pipelines() bool
}

// pipelines says whether the slave applies a pipeline without a round trip
// per batch.
func (w *worker) pipelines() bool {
	pl, ok := w.slave.(pipeliner)
	return ok && pl.pipelines()
}

// runBatches sends batches through one ordered pipeline, all of them
// without waiting for the answers, and hands each answer to done (the
// batch's index, its failures indexed within it), in order, in the
// caller's goroutine. An error means the pipeline failed: the batches not
// answered may or may not have been applied (entry and meta ops are
// idempotent: the next pass sends them again).
func (w *worker) runBatches(ctx context.Context, batches []opBatch, done func(i int, failures []ops.Failure)) error {
	if len(batches) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := w.openPipe(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	sent := make(chan error, 1)
	go func() {
		for _, b := range batches {
			if err := p.send(b); err != nil {
				sent <- err
				return
			}
		}
		sent <- p.closeSend()
	}()
	for i, b := range batches {
		fs, err := p.recv()
		if err == nil {
			for _, f := range fs {
				if f.Index < 0 || f.Index >= b.len() {
					err = fmt.Errorf("slave reported a failure for item %d of a batch of %d", f.Index, b.len())
					break
				}
			}
		}
		if err != nil {
			cancel()
			<-sent
			return err
		}
		done(i, fs)
	}
	<-sent // every batch is answered: a failed half-close changes nothing
	return nil
}

// openPipe opens the ordered pipeline of the slave: its Apply stream, or
// one call after the other.
func (w *worker) openPipe(ctx context.Context) (batchPipe, error) {
	if pl, ok := w.slave.(pipeliner); ok {
		p, ok, err := pl.pipeline(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			return p, nil
		}
	}
	return newSerialPipe(ctx, w.slave), nil
}

// firstBatch is the size of the first batch of entry ops on the Apply
// stream: the next ones double up to entry-batch.
const firstBatch = 500

// batchesOf cuts entries, then metas, into batches of at most n items.
// With ramp (the Apply stream, where a batch costs no round trip of its
// own) the entry batches start at firstBatch and double up to n, so that
// the answer of the first comes soon and the data of its files goes while
// the slave applies the rest.
func batchesOf(n int, entries []ops.Entry, metas []ops.Meta, ramp bool) []opBatch {
	var bs []opBatch
	size := n
	if ramp {
		size = min(n, firstBatch)
	}
	for start := 0; start < len(entries); start += size {
		if start > 0 && ramp {
			size = min(n, 2*size)
		}
		bs = append(bs, opBatch{entries: entries[start:min(start+size, len(entries))]})
	}
	for start := 0; start < len(metas); start += n {
		bs = append(bs, opBatch{metas: metas[start:min(start+n, len(metas))]})
	}
	return bs
}

// serialPipe is the pipeline of a slave without the Apply stream (an
// older slave, the tests' fake): one EntryOps or MetaOps call after the
// other, each once the previous one has answered, as before the stream.
type serialPipe struct {
	ctx    context.Context
	cancel context.CancelFunc
	api    slaveAPI
	in     chan opBatch
	out    chan pipeResult
	exited chan struct{}
}

type pipeResult struct {
	fs  []ops.Failure
	err error
}

func newSerialPipe(ctx context.Context, api slaveAPI) *serialPipe {
	ctx, cancel := context.WithCancel(ctx)
	p := &serialPipe{ctx: ctx, cancel: cancel, api: api, in: make(chan opBatch), out: make(chan pipeResult), exited: make(chan struct{})}
	go p.run()
	return p
}

func (p *serialPipe) run() {
	defer close(p.exited)
	defer close(p.out)
	for {
		var b opBatch
		select {
		case <-p.ctx.Done():
			return
		case bb, ok := <-p.in:
			if !ok {
				return
			}
			b = bb
		}
		var r pipeResult
		if b.metas != nil {
			r.fs, r.err = p.api.MetaOps(p.ctx, b.metas)
		} else {
			r.fs, r.err = p.api.EntryOps(p.ctx, b.entries)
		}
		select {
		case p.out <- r:
		case <-p.ctx.Done():
			return
		}
		if r.err != nil {
			return
		}
	}
}

func (p *serialPipe) send(b opBatch) error {
	select {
	case p.in <- b:
		return nil
	case <-p.exited:
		return errors.New("the pipeline stopped")
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

func (p *serialPipe) closeSend() error {
	close(p.in)
	return nil
}

func (p *serialPipe) recv() ([]ops.Failure, error) {
	r, ok := <-p.out
	if !ok {
		if err := p.ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("the pipeline stopped before answering every batch")
	}
	return r.fs, r.err
}

// close stops the pipeline and waits for its calls to end, so that none
// outlives the changelog that made it.
func (p *serialPipe) close() {
	p.cancel()
	<-p.exited
}

// streamPipe is the pipeline over the slave's Apply stream.
type streamPipe struct{ b *slaveclient.Batches }

func (p streamPipe) send(b opBatch) error {
	if b.metas != nil {
		return p.b.Metas(b.metas)
	}
	return p.b.Entries(b.entries)
}

func (p streamPipe) closeSend() error             { return p.b.CloseSend() }
func (p streamPipe) recv() ([]ops.Failure, error) { return p.b.Recv() }
func (p streamPipe) close()                       { p.b.Close() }

func (c *slaveClient) pipelines() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveApply
}

// pipeline opens the Apply stream when the slave has it.
func (c *slaveClient) pipeline(ctx context.Context) (batchPipe, bool, error) {
	if !c.pipelines() {
		return nil, false, nil
	}
	b, err := c.Client.Apply(ctx)
	if err != nil {
		return nil, false, err
	}
	return streamPipe{b}, true, nil
}
