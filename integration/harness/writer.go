package harness

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Writer is one step of a live writer: something a program does to the
// source while the daemon replicates it. It is called over and over from one
// goroutine with that goroutine's own seeded rng and the step number, so it
// may keep state (open descriptors) in its closure without locking.
type Writer func(rng *rand.Rand, step int) error

// WriterCounts is what RunWriters did: per writer, the steps run and how
// many of them hit an error a concurrent writer expects (see Benign).
type WriterCounts struct {
	Steps  []int
	Benign []int
}

func (c WriterCounts) String() string {
	return fmt.Sprintf("steps %v (of which lost a race: %v)", c.Steps, c.Benign)
}

// RunWriters runs every writer in its own goroutine, the k-th with
// rand.New(rand.NewPCG(seed, k)), each until it has run maxSteps steps, d has
// passed or ctx is done, whichever comes first, and waits for all of them.
// Now and then a writer pauses for up to 2 ms (seeded as well), so that the
// daemon meets the tree both mid-burst and between bursts. Errors for which
// Benign is true are counted; the first other error stops every writer and is
// returned.
func RunWriters(ctx context.Context, seed uint64, d time.Duration, maxSteps int, writers ...Writer) (WriterCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	counts := WriterCounts{Steps: make([]int, len(writers)), Benign: make([]int, len(writers))}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for k, w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(k)))
			pause := rand.New(rand.NewPCG(seed, uint64(k)+1<<32))
			for step := 0; step < maxSteps && ctx.Err() == nil; step++ {
				err := w(rng, step)
				counts.Steps[k]++
				if err != nil && Benign(err) {
					counts.Benign[k]++
				} else if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("writer %d step %d: %w", k, step, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				if pause.IntN(8) == 0 {
					time.Sleep(time.Duration(pause.IntN(2000)) * time.Microsecond)
				}
			}
		})
	}
	wg.Wait()
	return counts, first
}

// Benign reports whether err is one that a writer racing with other writers
// on the same names expects: the name is gone or taken, a directory is not
// empty or not a directory any more, or a directory cannot move into its own
// subtree.
func Benign(err error) bool {
	for _, e := range []error{fs.ErrNotExist, fs.ErrExist, unix.ENOTEMPTY, unix.ENOTDIR, unix.EISDIR, unix.EINVAL, unix.ELOOP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
