// Package catalog is the master's persistent state for a plain-directory
// source, kept in a bbolt file in the work dir: the identity of every inode
// (inode number and birth time → gfid) and the namespace as last synced to
// the slave (per gfid its type, attributes and links, and an index
// (parent gfid, name) → gfid).
//
// GlusterFS has no counterpart: there the brick provides gfids (trusted.gfid)
// and the crawl needs no memory. See ARCHITECTURE.md, "Identity on a
// plain-directory master".
//
// A Catalog is safe for concurrent use, but only one crawl may use it at a
// time. Every method that changes it commits (fsyncs) before it returns.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/georep/georep/rpc/gfid"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta    = []byte("meta")  // "version" → schemaVersion
	bucketIdent   = []byte("ident") // Key → gfid
	bucketKeyOf   = []byte("keyof") // gfid → Key
	bucketNodes   = []byte("nodes") // gfid → Node
	bucketNames   = []byte("names") // parent gfid + name → gfid
	keyVersion    = []byte("version")
	schemaVersion = []byte{1}
)

// Catalog is an open catalog file.
type Catalog struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the catalog at path. It fails if the directory of
// path is missing or not writable, or if another process holds the file
// open (after one second).
func Open(path string) (*Catalog, error) {
	dir := filepath.Dir(path)
	probe, err := os.CreateTemp(dir, ".catalog-probe-*")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: directory %s is not writable: %w", path, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketIdent, bucketKeyOf, bucketNodes, bucketNames} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return meta.Put(keyVersion, schemaVersion)
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("%w: schema version %x, this georep knows %x", ErrCorrupt, v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return &Catalog{db: db, path: path}, nil
}

// Path returns the catalog file's path.
func (c *Catalog) Path() string { return c.path }

// Close closes the catalog file.
func (c *Catalog) Close() error { return c.db.Close() }

// Identify maps each key to its gfid, assigning a fresh random gfid to every
// key not seen before. New assignments are committed before Identify
// returns, so a changelog naming them may be written afterwards. gfids[i]
// belongs to keys[i]; fresh counts the new assignments.
func (c *Catalog) Identify(keys []Key) (gfids []gfid.GFID, fresh int, err error) {
	gfids = make([]gfid.GFID, len(keys))
	var missing []int
	err = c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdent)
		for i, k := range keys {
			v := b.Get(k.bytes())
			if v == nil {
				missing = append(missing, i)
				continue
			}
			g, err := gfid.FromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, k, err)
			}
			gfids[i] = g
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return gfids, 0, err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		ident, keyof := tx.Bucket(bucketIdent), tx.Bucket(bucketKeyOf)
		// Assign first, then insert in key order (see Commit: random
		// inserts in one transaction are quadratic in bbolt).
		type pair struct{ kb, g []byte }
		assigned := map[string]gfid.GFID{}
		var pairs []pair
		for _, i := range missing {
			kb := keys[i].bytes()
			if v := ident.Get(kb); v != nil {
				copy(gfids[i][:], v)
				continue
			}
			g, ok := assigned[string(kb)] // a key given twice
			if !ok {
				g = gfid.New()
				assigned[string(kb)] = g
				pairs = append(pairs, pair{kb, g[:]})
				fresh++
			}
			gfids[i] = g
		}
		slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.kb, b.kb) })
		for _, p := range pairs {
			if err := ident.Put(p.kb, p.g); err != nil {
				return err
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.g, b.g) })
		for _, p := range pairs {
			if err := keyof.Put(p.g, p.kb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("catalog: assign gfids: %w", err)
	}
	return gfids, fresh, nil
}

// Bind records that each keys[i] is the inode of gfids[i], as a GlusterFS
// brick says (trusted.gfid): the brick's gfid is the truth and replaces
// whatever the catalog had for that key. It returns how many bindings were
// new, and commits before it returns.
func (c *Catalog) Bind(keys []Key, gfids []gfid.GFID) (fresh int, err error) {
	if len(keys) != len(gfids) {
		return 0, fmt.Errorf("catalog: bind %d keys to %d gfids", len(keys), len(gfids))
	}
	var missing []int
	err = c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdent)
		for i, k := range keys {
			if v := b.Get(k.bytes()); v == nil || !bytes.Equal(v, gfids[i][:]) {
				missing = append(missing, i)
			}
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return 0, err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		ident, keyof := tx.Bucket(bucketIdent), tx.Bucket(bucketKeyOf)
		type pair struct{ kb, g []byte }
		pairs := make([]pair, 0, len(missing))
		for _, i := range missing {
			pairs = append(pairs, pair{keys[i].bytes(), gfids[i][:]})
		}
		slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.kb, b.kb) })
		for _, p := range pairs {
			if old := ident.Get(p.kb); old != nil && !bytes.Equal(old, p.g) {
				if err := keyof.Delete(slices.Clone(old)); err != nil {
					return err
				}
			}
			if err := ident.Put(p.kb, p.g); err != nil {
				return err
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.g, b.g) })
		for _, p := range pairs {
			if old := keyof.Get(p.g); old != nil && !bytes.Equal(old, p.kb) && bytes.Equal(ident.Get(old), p.g) {
				if err := ident.Delete(slices.Clone(old)); err != nil {
					return err
				}
			}
			if err := keyof.Put(p.g, p.kb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: bind gfids: %w", err)
	}
	return len(missing), nil
}

// Identity returns the gfid assigned to key, if any, without assigning one.
func (c *Catalog) Identity(k Key) (g gfid.GFID, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIdent).Get(k.bytes())
		if v == nil {
			return nil
		}
		g, err = gfid.FromBytes(v)
		ok = err == nil
		return err
	})
	return g, ok, err
}

// Reassign gives key a fresh gfid, committed before it returns. The crawl
// uses it when the inode behind a key is evidently not the one the key was
// given to (an inode number reused on a filesystem without birth time). The
// old gfid keeps its node record until it is committed as deleted.
func (c *Catalog) Reassign(key Key) (gfid.GFID, error) {
	g := gfid.New()
	err := c.db.Update(func(tx *bolt.Tx) error {
		kb := key.bytes()
		if err := tx.Bucket(bucketIdent).Put(kb, g[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketKeyOf).Put(g[:], kb)
	})
	if err != nil {
		return gfid.GFID{}, fmt.Errorf("catalog: reassign %v: %w", key, err)
	}
	return g, nil
}

// ForEachIdentity calls fn for every assigned identity, in key order.
func (c *Catalog) ForEachIdentity(fn func(Key, gfid.GFID) error) error {
	return c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdent).ForEach(func(k, v []byte) error {
			key, err := keyFromBytes(k)
			if err != nil {
				return err
			}
			g, err := gfid.FromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, key, err)
			}
			return fn(key, g)
		})
	})
}

// Node returns the synced record of g.
func (c *Catalog) Node(g gfid.GFID) (n Node, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get(g[:])
		if v == nil {
			return nil
		}
		ok = true
		n, err = unmarshalNode(g, v)
		return err
	})
	return n, ok, err
}

// ForEachNode calls fn for every synced node, in gfid order. fn must not
// call methods of c that write.
func (c *Catalog) ForEachNode(fn func(Node) error) error {
	return c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			g, err := gfid.FromBytes(k)
			if err != nil {
				return fmt.Errorf("%w: node key: %w", ErrCorrupt, err)
			}
			n, err := unmarshalNode(g, v)
			if err != nil {
				return err
			}
			return fn(n)
		})
	})
}

// Lookup returns the gfid synced at name in directory parent.
func (c *Catalog) Lookup(parent gfid.GFID, name string) (g gfid.GFID, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNames).Get(nameKey(parent, name))
		if v == nil {
			return nil
		}
		g, err = gfid.FromBytes(v)
		ok = err == nil
		return err
	})
	return g, ok, err
}

// Children returns the synced entries of directory dir.
func (c *Catalog) Children(dir gfid.GFID) (map[string]gfid.GFID, error) {
	m := map[string]gfid.GFID{}
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketNames).Cursor()
		for k, v := cur.Seek(dir[:]); k != nil && bytes.HasPrefix(k, dir[:]); k, v = cur.Next() {
			g, err := gfid.FromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: name index: %w", ErrCorrupt, err)
			}
			m[string(k[16:])] = g
		}
		return nil
	})
	return m, err
}

// ForEachChild calls fn for every synced entry of directory dir, in byte
// order of names, without holding the directory in memory. fn must not call
// methods of c that write.
func (c *Catalog) ForEachChild(dir gfid.GFID, fn func(name string, g gfid.GFID) error) error {
	return c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketNames).Cursor()
		for k, v := cur.Seek(dir[:]); k != nil && bytes.HasPrefix(k, dir[:]); k, v = cur.Next() {
			g, err := gfid.FromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: name index: %w", ErrCorrupt, err)
			}
			if err := fn(string(k[16:]), g); err != nil {
				return err
			}
		}
		return nil
	})
}

func nameKey(parent gfid.GFID, name string) []byte {
	k := make([]byte, 16+len(name))
	copy(k, parent[:])
	copy(k[16:], name)
	return k
}

// Commit records, in one transaction, nodes as the new synced state of their
// gfids and forgets the deleted gfids: their node records, their names in
// the index and their identity (so the gfid is never handed out again). A
// deleted gfid may have no node (an identity assigned but never synced).
func (c *Catalog) Commit(nodes []Node, deleted []gfid.GFID) error {
	for i := range nodes {
		if nodes[i].GFID.IsZero() {
			return errors.New("catalog: commit of a node with zero gfid")
		}
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		nb, names := tx.Bucket(bucketNodes), tx.Bucket(bucketNames)
		ident, keyof := tx.Bucket(bucketIdent), tx.Bucket(bucketKeyOf)
		// unlinkOld removes g's synced names from the index, where they
		// still point at g.
		unlinkOld := func(g gfid.GFID) error {
			v := nb.Get(g[:])
			if v == nil {
				return nil
			}
			old, err := unmarshalNode(g, v)
			if err != nil {
				return err
			}
			for _, l := range old.Links {
				k := nameKey(l.Parent, l.Name)
				if bytes.Equal(names.Get(k), g[:]) {
					if err := names.Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		}
		for _, g := range deleted {
			if err := unlinkOld(g); err != nil {
				return err
			}
			if err := nb.Delete(g[:]); err != nil {
				return err
			}
			if kb := keyof.Get(g[:]); kb != nil {
				if bytes.Equal(ident.Get(kb), g[:]) {
					if err := ident.Delete(kb); err != nil {
						return err
					}
				}
				if err := keyof.Delete(g[:]); err != nil {
					return err
				}
			}
		}
		for i := range nodes {
			if err := unlinkOld(nodes[i].GFID); err != nil {
				return err
			}
		}
		// Keys go in sorted: bbolt splits pages only at commit, and random
		// inserts into one growing page cost O(n²) (minutes for a first
		// sync of 200,000 files).
		order := make([]int, len(nodes))
		type nameEntry struct{ key, g []byte }
		var nameKeys []nameEntry
		for i := range nodes {
			order[i] = i
			for _, l := range nodes[i].Links {
				nameKeys = append(nameKeys, nameEntry{nameKey(l.Parent, l.Name), nodes[i].GFID[:]})
			}
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(nodes[a].GFID[:], nodes[b].GFID[:]) })
		for _, i := range order {
			if err := nb.Put(nodes[i].GFID[:], nodes[i].marshal()); err != nil {
				return err
			}
		}
		slices.SortFunc(nameKeys, func(a, b nameEntry) int { return bytes.Compare(a.key, b.key) })
		for _, e := range nameKeys {
			if err := names.Put(e.key, e.g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: commit: %w", err)
	}
	return nil
}

// Count returns how many gfids the synced namespace holds: the entries the
// slave is believed to have (the safety guards' base).
func (c *Catalog) Count() (int64, error) {
	var n int64
	err := c.db.View(func(tx *bolt.Tx) error {
		n = int64(tx.Bucket(bucketNodes).Stats().KeyN)
		return nil
	})
	return n, err
}
