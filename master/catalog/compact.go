package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// An LSM keeps the old version of a rewritten or deleted key until a
// compaction merges it away, and its own compactions, which it starts as
// levels fill up, leave a store of random keys (gfids) holding up to about
// half again what is live after commits that rewrote most of it (a first
// sync writes every record twice or three times: Identify, the entry ops'
// commit, the pass's commit). So once commits have replaced or deleted, since
// the last time, a quarter as many keys as the catalog holds (about three a
// file: identity, node, name) and at least compactMin, the whole store is
// compacted in the background: the old versions go, and a catalog stays
// near its compacted size (ARCHITECTURE.md, "The catalog's store").
const compactMin = 100_000

// closeWait is how long Close lets a running background compaction go on
// before it cancels it: long enough for a store of a few million files
// (about 100 MB/s), so that a oneshot run's first sync leaves a compact
// catalog, short enough not to hold up a daemon's stop.
const closeWait = 10 * time.Second

// finishCompaction waits for a running background compaction, canceling it
// after closeWait.
func (c *Catalog) finishCompaction() {
	done := make(chan struct{})
	go func() {
		c.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
	c.cancel()
	<-done
}

// wrote counts the keys a commit replaced or deleted and starts the
// background compaction when it is due. c.mu is held.
func (c *Catalog) wrote(garbage int) {
	c.writes.Add(1)
	c.garbage += int64(garbage)
	if c.compacting || !c.compactionDue() {
		return
	}
	c.compacting = true
	c.bg.Add(1)
	go c.compact()
}

func (c *Catalog) compactionDue() bool {
	return c.garbage >= max(compactMin, 3*c.count.Load()/4)
}

// compact compacts the whole store until no more compaction is due (commits
// go on meanwhile).
func (c *Catalog) compact() {
	defer c.bg.Done()
	for {
		c.mu.Lock()
		c.garbage = 0
		c.mu.Unlock()
		err := c.db.Compact(c.ctx, []byte{0}, []byte{0xff}, false)
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "catalog %s: background compaction: %v\n", c.path, err)
		}
		c.mu.Lock()
		if err != nil || !c.compactionDue() {
			c.compacting = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}
