package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// countingSlave answers every EntryOps call with what answer returns for
// its call number (from 0), counting the calls.
type countingSlave struct {
	slaveAPI
	calls  atomic.Int32
	answer func(call int, entries []ops.Entry) ([]ops.Failure, error)
}

func (c *countingSlave) EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error) {
	return c.answer(int(c.calls.Add(1)-1), entries)
}

func mkdirs(n int) []ops.Entry {
	es := make([]ops.Entry, n)
	for i := range es {
		es[i] = ops.Entry{Op: ops.OpMkdir, GFID: gfid.New(), Parent: gfid.Root, Name: fmt.Sprintf("d%d", i), Mode: 0o40755}
	}
	return es
}

// TestRunBatchesInOrder: the answers come in the order sent, each with its
// failures indexed within its batch, and sendOps maps them back to the
// changelog's ops.
func TestRunBatchesInOrder(t *testing.T) {
	var sizes []int
	cs := &countingSlave{slaveAPI: newFakeSlave(), answer: func(call int, entries []ops.Entry) ([]ops.Failure, error) {
		sizes = append(sizes, len(entries))
		if call == 1 {
			return []ops.Failure{{Index: 1, Errno: ops.ErrNotFound, Message: "no parent"}}, nil
		}
		return nil, nil
	}}
	w := &worker{log: slog.New(slog.DiscardHandler), slave: cs, batch: 3}
	entries := mkdirs(8)
	opGFID := make([]gfid.GFID, len(entries))
	for i, e := range entries {
		opGFID[i] = e.GFID
	}
	var applied []int
	out := &outcome{failed: map[gfid.GFID]string{}, resolving: map[gfid.GFID]bool{}}
	failed, metaFails, err := w.sendOps(t.Context(), entries, opGFID, out, nil, func(n int) { applied = append(applied, n) })
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[3 3 2]" || fmt.Sprint(applied) != "[3 6 8]" {
		t.Errorf("calls of %v, applied after each %v; want [3 3 2] and [3 6 8]", sizes, applied)
	}
	if len(failed) != 1 || failed[0].i != 4 || !out.resolving[opGFID[4]] || len(metaFails) != 0 {
		t.Errorf("failed %+v, resolving %v: want the op at 4", failed, out.resolving)
	}
}

// TestRunBatchesFailedCall: a call that fails whole ends the pipeline with
// its error; the batches after it are not sent.
func TestRunBatchesFailedCall(t *testing.T) {
	boom := errors.New("connection lost")
	cs := &countingSlave{slaveAPI: newFakeSlave(), answer: func(call int, entries []ops.Entry) ([]ops.Failure, error) {
		if call == 1 {
			return nil, boom
		}
		return nil, nil
	}}
	w := &worker{log: slog.New(slog.DiscardHandler), slave: cs}
	var answered []int
	err := w.runBatches(t.Context(), batchesOf(2, mkdirs(10), nil, false), func(i int, _ []ops.Failure) { answered = append(answered, i) })
	if !errors.Is(err, boom) {
		t.Fatalf("runBatches = %v, want %v", err, boom)
	}
	if fmt.Sprint(answered) != "[0]" || cs.calls.Load() != 2 {
		t.Errorf("answered %v after %d calls; want [0] after 2", answered, cs.calls.Load())
	}
}

// TestRunBatchesBadIndex: a failure the slave reports beyond its batch is
// an error of the whole pipeline.
func TestRunBatchesBadIndex(t *testing.T) {
	cs := &countingSlave{slaveAPI: newFakeSlave(), answer: func(call int, entries []ops.Entry) ([]ops.Failure, error) {
		return []ops.Failure{{Index: len(entries)}}, nil
	}}
	w := &worker{log: slog.New(slog.DiscardHandler), slave: cs}
	err := w.runBatches(t.Context(), batchesOf(2, mkdirs(4), nil, false), func(int, []ops.Failure) {})
	if err == nil || !strings.Contains(err.Error(), "failure for item 2 of a batch of 2") {
		t.Fatalf("runBatches = %v", err)
	}
}

// TestBatchesOfRamp: on the Apply stream the entry batches start small and
// double up to entry-batch; the metas follow in batches of entry-batch.
func TestBatchesOfRamp(t *testing.T) {
	metas := make([]ops.Meta, 2500)
	for _, tc := range []struct {
		ramp bool
		want string
	}{
		{false, "[e2000 e2000 e2000 e2000 e2000 e1100 m2000 m500]"},
		{true, "[e500 e1000 e2000 e2000 e2000 e2000 e1600 m2000 m500]"},
	} {
		var got []string
		for _, b := range batchesOf(2000, make([]ops.Entry, 11100), metas, tc.ramp) {
			if b.metas != nil {
				got = append(got, fmt.Sprintf("m%d", len(b.metas)))
			} else {
				got = append(got, fmt.Sprintf("e%d", len(b.entries)))
			}
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("ramp %v: batches %v, want %v", tc.ramp, got, tc.want)
		}
	}
}
