package catalog

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/georep/georep/rpc/gfid"
)

// Unsync forgets what the slave was believed to hold for gfids, and for
// every gfid below them in the synced namespace, while keeping their
// identity: the next crawl sees them as new and recreates them on the slave
// under the same gfids. The master calls it when the slave turns out not to
// hold what the catalog says (a replica damaged or restored behind georep's
// back, or an entry left in the park by a crash).
func (c *Catalog) Unsync(gfids []gfid.GFID) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.unsync(gfids)
	if err != nil {
		return 0, fmt.Errorf("catalog: unsync: %w", err)
	}
	return n, nil
}

func (c *Catalog) unsync(gfids []gfid.GFID) (int, error) {
	b := c.db.NewBatch()
	defer b.Close()
	n := 0
	queue := append([]gfid.GFID(nil), gfids...)
	seen := map[gfid.GFID]bool{}
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		if seen[g] || g == gfid.Root {
			continue
		}
		seen[g] = true
		node, key, hasKey, ok, err := c.node(g)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		// Reads see the catalog as committed, not this batch: a name points
		// at one gfid, so the removals below never change what they find.
		for _, l := range node.Links {
			k := nameKey(l.Parent, l.Name)
			if cur, ok, err := c.getGFID(k); err != nil {
				return 0, err
			} else if ok && cur == g {
				b.Delete(k, nil)
			}
		}
		if node.Type == TypeDir {
			lower, upper := dirBounds(g)
			err := c.iterate(lower, upper, func(_, v []byte) error {
				if child, err := gfid.FromBytes(v); err == nil {
					queue = append(queue, child)
				}
				return nil
			})
			if err != nil {
				return 0, err
			}
		}
		b.Delete(gfidKey(tabNodes, g), nil)
		// The identity stays: its reverse moves to the pending table.
		if hasKey {
			if cur, ok, err := c.getGFID(identKey(key)); err != nil {
				return 0, err
			} else if ok && cur == g {
				b.Set(gfidKey(tabPending, g), key.bytes(), nil)
			}
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	count := c.count.Load() - int64(n)
	b.Set(metaCount, binary.AppendUvarint(nil, uint64(count)), nil)
	garbage := int(b.Count())
	if err := c.db.Apply(b, pebble.Sync); err != nil {
		return 0, err
	}
	c.count.Store(count)
	c.wrote(garbage)
	return n, nil
}
