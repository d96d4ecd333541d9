package catalog

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/georep/georep/rpc/gfid"
)

// Unsync forgets what the slave was believed to hold for gfids, and for
// every gfid below them in the synced namespace, while keeping their
// identity: the next crawl sees them as new and recreates them on the slave
// under the same gfids. The master calls it when the slave turns out not to
// hold what the catalog says (a replica damaged or restored behind georep's
// back, or an entry left in the park by a crash).
func (c *Catalog) Unsync(gfids []gfid.GFID) (int, error) {
	n := 0
	err := c.db.Update(func(tx *bolt.Tx) error {
		nb, names := tx.Bucket(bucketNodes), tx.Bucket(bucketNames)
		queue := append([]gfid.GFID(nil), gfids...)
		seen := map[gfid.GFID]bool{}
		for len(queue) > 0 {
			g := queue[0]
			queue = queue[1:]
			if seen[g] || g == gfid.Root {
				continue
			}
			seen[g] = true
			v := nb.Get(g[:])
			if v == nil {
				continue
			}
			node, err := unmarshalNode(g, v)
			if err != nil {
				return err
			}
			for _, l := range node.Links {
				k := nameKey(l.Parent, l.Name)
				if bytes.Equal(names.Get(k), g[:]) {
					if err := names.Delete(k); err != nil {
						return err
					}
				}
			}
			if node.Type == TypeDir {
				cur := names.Cursor()
				for k, v := cur.Seek(g[:]); k != nil && bytes.HasPrefix(k, g[:]); k, v = cur.Next() {
					child, err := gfid.FromBytes(v)
					if err == nil {
						queue = append(queue, child)
					}
				}
			}
			if err := nb.Delete(g[:]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: unsync: %w", err)
	}
	return n, nil
}
