package replica

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// applyBatch applies n operations in order, each under the replica's lock,
// with the directory cache of one batch (see beginBatch). A failed operation
// does not stop the rest; when ctx is done, the rest fail with ECANCELED.
// do performs operation i; fail turns its error into the Failure
// reported.
func (r *Replica) applyBatch(ctx context.Context, n int, do func(i int) error, fail func(i int, err error) ops.Failure) []ops.Failure {
	if r.lock() == nil {
		r.beginBatch()
		r.mu.Unlock()
	}
	defer func() {
		if r.lock() == nil {
			r.endBatch()
			r.mu.Unlock()
		}
	}()
	var fails []ops.Failure
	for i := range n {
		var err error
		if cerr := ctx.Err(); cerr != nil {
			err = apply.Errorf(unix.ECANCELED, "not applied: %v", cerr)
		} else if err = r.lock(); err == nil {
			err = do(i)
			r.mu.Unlock()
		}
		if err != nil {
			f := fail(i, err)
			f.Index, f.Errno = i, apply.ErrnoOf(err)
			r.log.Debug("replica op failed", "index", i, "errno", int(f.Errno), "err", f.Message)
			fails = append(fails, f)
		}
	}
	return fails
}
