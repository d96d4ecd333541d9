// Package catalog is the master's persistent state for a plain-directory
// source, kept in a Pebble store (a directory) in the work dir: the identity
// of every inode (inode number and birth time → gfid) and the namespace as
// last synced to the slave (per gfid its type, attributes and links, and an
// index (parent gfid, name) → gfid).
//
// GlusterFS has no counterpart: there the brick provides gfids (trusted.gfid)
// and the crawl needs no memory. See ARCHITECTURE.md, "Identity on a
// plain-directory master", for what it holds and "The catalog's store" for
// how.
//
// A Catalog is safe for concurrent use, but only one crawl may use it at a
// time. Every method that changes it commits (fsyncs) before it returns, in
// one atomic write: after a crash the catalog holds each change whole or not
// at all.
package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/georep/georep/rpc/gfid"
)

// The store is one ordered keyspace; the first byte of a key names its
// table.
const (
	tabNames   = 'e' // parent gfid + name → gfid
	tabIdent   = 'i' // Key (16 bytes, big-endian) → gfid
	tabMeta    = 'm' // metaVersion → schemaVersion; metaCount → uvarint node count
	tabNodes   = 'n' // gfid → node record (record.go), with the reverse of its identity
	tabPending = 'u' // gfid → Key: the reverse of an identity whose gfid has no node record
)

var (
	metaVersion = []byte{tabMeta, 'v'}
	metaCount   = []byte{tabMeta, 'c'}
)

// schemaVersion is the store's format. Version 1 was the bbolt file
// (migrated by Open, v1.go).
const schemaVersion = 2

// Catalog is an open catalog.
type Catalog struct {
	db   *pebble.DB
	path string
	// mu serializes the methods that write: each reads what it changes
	// and then commits one batch.
	mu     sync.Mutex
	count  atomic.Int64 // nodes, as metaCount says
	closed atomic.Bool
	writes atomic.Uint64 // batches committed since Open (Writes)

	// The background compaction (compact.go), under mu.
	garbage    int64 // keys replaced or deleted since the last one
	compacting bool
	ctx        context.Context // canceled by Close
	cancel     context.CancelFunc
	bg         sync.WaitGroup
}

var errClosed = errors.New("catalog: closed")

// Path returns the catalog's path (a directory).
func (c *Catalog) Path() string { return c.path }

// Close closes the catalog, after a background compaction that is running
// (for a few seconds at most). Closing it again does nothing.
func (c *Catalog) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.finishCompaction()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Flushed, the store holds no log to replay at the next Open.
	err := c.db.Flush()
	if cerr := c.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("catalog %s: close: %w", c.path, err)
	}
	return nil
}

func (c *Catalog) check() error {
	if c.closed.Load() {
		return errClosed
	}
	return nil
}

func identKey(k Key) []byte { return putIdentKey(make([]byte, 17), k) }

// putIdentKey writes k's key in the identity table into b (17 bytes).
func putIdentKey(b []byte, k Key) []byte {
	b[0] = tabIdent
	binary.BigEndian.PutUint64(b[1:], k.Ino)
	binary.BigEndian.PutUint64(b[9:], uint64(k.BtimeNs))
	return b
}

func gfidKey(table byte, g gfid.GFID) []byte {
	b := make([]byte, 17)
	b[0] = table
	copy(b[1:], g[:])
	return b
}

func nameKey(parent gfid.GFID, name string) []byte {
	b := make([]byte, 17+len(name))
	b[0] = tabNames
	copy(b[1:], parent[:])
	copy(b[17:], name)
	return b
}

// dirBounds are the bounds of dir's entries in the names table.
func dirBounds(dir gfid.GFID) (lower, upper []byte) {
	lower = gfidKey(tabNames, dir)
	return lower, prefixEnd(lower)
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i]++; end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// get calls fn with the value of key, if the key exists; the value is only
// valid during fn.
func (c *Catalog) get(key []byte, fn func(v []byte) error) (found bool, err error) {
	v, closer, err := c.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(v)
}

func (c *Catalog) getGFID(key []byte) (g gfid.GFID, ok bool, err error) {
	ok, err = c.get(key, func(v []byte) error {
		var err error
		g, err = gfid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("%w: value of %x: %w", ErrCorrupt, key, err)
		}
		return nil
	})
	return g, ok && err == nil, err
}

// node reads g's record.
func (c *Catalog) node(g gfid.GFID) (n Node, key Key, hasKey, ok bool, err error) {
	ok, err = c.get(gfidKey(tabNodes, g), func(v []byte) error {
		var err error
		n, key, hasKey, err = decodeNode(g, v)
		return err
	})
	return n, key, hasKey, ok && err == nil, err
}

// apply commits b durably (fsync of the write-ahead log) and closes it;
// garbage is how many of its keys replace or delete a stored one (compact.go).
// c.mu is held.
func (c *Catalog) apply(b *pebble.Batch, garbage int) error {
	defer b.Close()
	if b.Empty() {
		return nil
	}
	if err := c.db.Apply(b, pebble.Sync); err != nil {
		return err
	}
	c.wrote(garbage)
	return nil
}

// Identify maps each key to its gfid, assigning a fresh random gfid to every
// key not seen before. New assignments are committed before Identify
// returns, so a changelog naming them may be written afterwards. gfids[i]
// belongs to keys[i]; fresh counts the new assignments.
func (c *Catalog) Identify(keys []Key) (gfids []gfid.GFID, fresh int, err error) {
	if err := c.check(); err != nil {
		return nil, 0, err
	}
	gfids = make([]gfid.GFID, len(keys))
	found := make([]bool, len(keys))
	var ar arena
	ik := make([][]byte, len(keys))
	for i, k := range keys {
		ik[i] = putIdentKey(ar.alloc(17), k)
	}
	read := func(idx []int) error {
		sub := make([][]byte, len(idx))
		for j, i := range idx {
			sub[j] = ik[i]
		}
		return c.lookup(sub, func(j int, v []byte) error {
			g, err := gfid.FromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, keys[idx[j]], err)
			}
			gfids[idx[j]], found[idx[j]] = g, true
			return nil
		})
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	if err := read(all); err != nil {
		return nil, 0, fmt.Errorf("catalog: identify: %w", err)
	}
	var missing []int
	for i := range keys {
		if !found[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return gfids, 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Assigned since the read above, by a concurrent call?
	if err := read(missing); err != nil {
		return nil, 0, fmt.Errorf("catalog: identify: %w", err)
	}
	// In key order, so that a key given twice is adjacent: it gets one gfid.
	n := 0
	for _, i := range missing {
		if !found[i] {
			missing[n] = i
			n++
		}
	}
	missing = missing[:n]
	slices.SortFunc(missing, func(a, b int) int { return bytes.Compare(ik[a], ik[b]) })
	type pair struct {
		k []byte
		g gfid.GFID
	}
	pairs := make([]pair, 0, len(missing))
	for j, i := range missing {
		if j > 0 && bytes.Equal(ik[i], ik[missing[j-1]]) {
			gfids[i] = gfids[missing[j-1]]
			continue
		}
		gfids[i] = gfid.New()
		pairs = append(pairs, pair{ik[i], gfids[i]})
	}
	fresh = len(pairs)
	b := c.db.NewBatchWithSize(len(pairs)*80 + 64)
	for _, p := range pairs {
		b.Set(p.k, p.g[:], nil)
	}
	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.g[:], b.g[:]) })
	for _, p := range pairs {
		b.Set(gfidKey(tabPending, p.g), p.k[1:], nil)
	}
	if err := c.apply(b, 0); err != nil {
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
	for _, g := range gfids {
		if g.IsZero() {
			return 0, errors.New("catalog: bind to the zero gfid")
		}
	}
	if err := c.check(); err != nil {
		return 0, err
	}
	changed := func(idx []int) ([]int, error) {
		ks := make([]Key, len(idx))
		for j, i := range idx {
			ks[j] = keys[i]
		}
		cur, err := c.identities(ks)
		if err != nil {
			return nil, err
		}
		var out []int
		for j, i := range idx {
			if cur[j] != gfids[i] {
				out = append(out, i)
			}
		}
		return out, nil
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	missing, err := changed(all)
	if err != nil || len(missing) == 0 {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if missing, err = changed(missing); err != nil || len(missing) == 0 { // a concurrent call did it
		return 0, err
	}
	if err := c.bind(keys, gfids, missing); err != nil {
		return 0, fmt.Errorf("catalog: bind gfids: %w", err)
	}
	return len(missing), nil
}

// identities returns the gfid of each key (zero: none), in one pass.
func (c *Catalog) identities(keys []Key) ([]gfid.GFID, error) {
	var ar arena
	ik := make([][]byte, len(keys))
	for i, k := range keys {
		ik[i] = putIdentKey(ar.alloc(17), k)
	}
	gs := make([]gfid.GFID, len(keys))
	err := c.lookup(ik, func(i int, v []byte) error {
		g, err := gfid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, keys[i], err)
		}
		gs[i] = g
		return nil
	})
	return gs, err
}

// reverses reads what the store says of each gfid's inode key: its node
// record (nil: none) and the key it or the pending table holds.
func (c *Catalog) reverses(gs []gfid.GFID) (recs [][]byte, keys []Key, has []bool, err error) {
	var ar arena
	ks := make([][]byte, len(gs))
	for i, g := range gs {
		k := ar.alloc(17)
		k[0] = tabNodes
		copy(k[1:], g[:])
		ks[i] = k
	}
	recs, keys, has = make([][]byte, len(gs)), make([]Key, len(gs)), make([]bool, len(gs))
	err = c.lookup(ks, func(i int, v []byte) error {
		recs[i] = ar.clone(v)
		r, err := viewRecord(v)
		if err != nil {
			return fmt.Errorf("node %s: %w", gs[i], err)
		}
		keys[i], has[i] = r.key, r.hasKey
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range ks {
		ks[i][0] = tabPending
	}
	err = c.lookup(ks, func(i int, v []byte) error {
		k, err := keyFromBytes(v)
		keys[i], has[i] = k, err == nil
		return err
	})
	return recs, keys, has, err
}

// bind binds keys[i] to gfids[i] for every i in idx, in one batch. c.mu is
// held.
func (c *Catalog) bind(keys []Key, gfids []gfid.GFID, idx []int) error {
	type pair struct {
		k Key
		g gfid.GFID
	}
	pairs := make([]pair, len(idx))
	for j, i := range idx {
		pairs[j] = pair{keys[i], gfids[i]}
	}
	// What the store holds of every key and gfid involved, read in passes;
	// then ident maps a key to its gfid (zero: none) and reverse a gfid to
	// its key (nil: none), as this call changes them.
	ident := map[Key]gfid.GFID{}
	reverse := map[gfid.GFID]*Key{}
	records := map[gfid.GFID][]byte{}
	loadIdent := func(ks []Key) error {
		var todo []Key
		for _, k := range ks {
			if _, ok := ident[k]; !ok {
				todo = append(todo, k)
			}
		}
		gs, err := c.identities(todo)
		for i, k := range todo {
			ident[k] = gs[i]
		}
		return err
	}
	loadReverse := func(gs []gfid.GFID) error {
		var todo []gfid.GFID
		for _, g := range gs {
			if _, ok := reverse[g]; !ok && !g.IsZero() {
				todo = append(todo, g)
			}
		}
		recs, ks, has, err := c.reverses(todo)
		for i, g := range todo {
			reverse[g] = nil
			if has[i] {
				reverse[g] = &ks[i]
			}
			if recs[i] != nil {
				records[g] = recs[i]
			}
		}
		return err
	}
	ks := make([]Key, len(pairs))
	for i, p := range pairs {
		ks[i] = p.k
	}
	if err := loadIdent(ks); err != nil {
		return err
	}
	var gs []gfid.GFID
	for _, p := range pairs {
		gs = append(gs, p.g, ident[p.k])
	}
	if err := loadReverse(gs); err != nil {
		return err
	}
	ks = ks[:0]
	for _, p := range pairs {
		if k := reverse[p.g]; k != nil {
			ks = append(ks, *k)
		}
	}
	if err := loadIdent(ks); err != nil {
		return err
	}
	identChanged := map[Key]bool{}
	reverseChanged := map[gfid.GFID]bool{}

	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.k.bytes(), b.k.bytes()) })
	for _, p := range pairs {
		if old := ident[p.k]; !old.IsZero() && old != p.g {
			reverse[old], reverseChanged[old] = nil, true // old loses its inode
		}
		ident[p.k], identChanged[p.k] = p.g, true
	}
	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.g[:], b.g[:]) })
	for _, p := range pairs {
		if old := reverse[p.g]; old != nil && *old != p.k && ident[*old] == p.g {
			// p.g moved from another inode: that one's identity goes.
			ident[*old], identChanged[*old] = gfid.GFID{}, true
		}
		k := p.k
		reverse[p.g], reverseChanged[p.g] = &k, true
	}

	b := c.db.NewBatch()
	for _, k := range slices.SortedFunc(maps.Keys(identChanged), func(a, b Key) int { return bytes.Compare(a.bytes(), b.bytes()) }) {
		if g := ident[k]; g.IsZero() {
			b.Delete(identKey(k), nil)
		} else {
			b.Set(identKey(k), g[:], nil)
		}
	}
	for _, g := range slices.SortedFunc(maps.Keys(reverseChanged), func(a, b gfid.GFID) int { return bytes.Compare(a[:], b[:]) }) {
		k := reverse[g]
		if rec := records[g]; rec != nil {
			// The record holds the reverse.
			n, _, hasKey, err := decodeNode(g, rec)
			if err != nil {
				b.Close()
				return err
			}
			if k != nil || hasKey {
				b.Set(gfidKey(tabNodes, g), encodeNode(nil, &n, k), nil)
			}
			b.Delete(gfidKey(tabPending, g), nil)
		} else if k != nil {
			b.Set(gfidKey(tabPending, g), k.bytes(), nil)
		} else {
			b.Delete(gfidKey(tabPending, g), nil)
		}
	}
	return c.apply(b, int(b.Count()))
}

// Identity returns the gfid assigned to key, if any, without assigning one.
func (c *Catalog) Identity(k Key) (g gfid.GFID, ok bool, err error) {
	if err := c.check(); err != nil {
		return g, false, err
	}
	return c.getGFID(identKey(k))
}

// Reassign gives key a fresh gfid, committed before it returns. The crawl
// uses it when the inode behind a key is evidently not the one the key was
// given to (an inode number reused on a filesystem without birth time). The
// old gfid keeps its node record until it is committed as deleted.
func (c *Catalog) Reassign(key Key) (gfid.GFID, error) {
	if err := c.check(); err != nil {
		return gfid.GFID{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := gfid.New()
	b := c.db.NewBatch()
	b.Set(identKey(key), g[:], nil)
	b.Set(gfidKey(tabPending, g), key.bytes(), nil)
	if err := c.apply(b, 1); err != nil {
		return gfid.GFID{}, fmt.Errorf("catalog: reassign %v: %w", key, err)
	}
	return g, nil
}

// iterate calls fn for every key and value of the table range [lower,
// upper), in key order, on a consistent view of the catalog.
func (c *Catalog) iterate(lower, upper []byte, fn func(k, v []byte) error) error {
	if err := c.check(); err != nil {
		return err
	}
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

func table(t byte) (lower, upper []byte) { return []byte{t}, []byte{t + 1} }

// ForEachIdentity calls fn for every assigned identity, in key order.
func (c *Catalog) ForEachIdentity(fn func(Key, gfid.GFID) error) error {
	lower, upper := table(tabIdent)
	return c.iterate(lower, upper, func(k, v []byte) error {
		key, err := keyFromBytes(k[1:])
		if err != nil {
			return err
		}
		g, err := gfid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, key, err)
		}
		return fn(key, g)
	})
}

// Node returns the synced record of g.
func (c *Catalog) Node(g gfid.GFID) (n Node, ok bool, err error) {
	if err := c.check(); err != nil {
		return n, false, err
	}
	n, _, _, ok, err = c.node(g)
	return n, ok, err
}

// ForEachNode calls fn for every synced node, in gfid order. fn must not
// call methods of c that write.
func (c *Catalog) ForEachNode(fn func(Node) error) error {
	lower, upper := table(tabNodes)
	return c.iterate(lower, upper, func(k, v []byte) error {
		g, err := gfid.FromBytes(k[1:])
		if err != nil {
			return fmt.Errorf("%w: node key: %w", ErrCorrupt, err)
		}
		n, _, _, err := decodeNode(g, v)
		if err != nil {
			return err
		}
		return fn(n)
	})
}

// Lookup returns the gfid synced at name in directory parent.
func (c *Catalog) Lookup(parent gfid.GFID, name string) (g gfid.GFID, ok bool, err error) {
	if err := c.check(); err != nil {
		return g, false, err
	}
	return c.getGFID(nameKey(parent, name))
}

// Children returns the synced entries of directory dir.
func (c *Catalog) Children(dir gfid.GFID) (map[string]gfid.GFID, error) {
	m := map[string]gfid.GFID{}
	err := c.ForEachChild(dir, func(name string, g gfid.GFID) error {
		m[name] = g
		return nil
	})
	return m, err
}

// ForEachChild calls fn for every synced entry of directory dir, in byte
// order of names, without holding the directory in memory. fn must not call
// methods of c that write.
func (c *Catalog) ForEachChild(dir gfid.GFID, fn func(name string, g gfid.GFID) error) error {
	lower, upper := dirBounds(dir)
	return c.iterate(lower, upper, func(k, v []byte) error {
		g, err := gfid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("%w: name index: %w", ErrCorrupt, err)
		}
		return fn(string(k[17:]), g)
	})
}

// Writes counts the changes committed since Open (each Identify, Bind,
// Commit, Reassign, Unsync that changed anything): equal before and after
// some reads, nothing changed the catalog in between.
func (c *Catalog) Writes() uint64 { return c.writes.Load() }

// Count returns how many gfids the synced namespace holds: the entries the
// slave is believed to have (the safety guards' base). It reads a counter
// that every change keeps in step.
func (c *Catalog) Count() (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.count.Load(), nil
}

// Identities is Identity for many keys at once: gfids[i] and ok[i] are what
// Identity(keys[i]) returns. One iterator pass over the identity table in
// key order: a directory's inodes, whose numbers are close, cost a scan of
// a few blocks rather than a lookup each (the crawl's per-entry reads).
func (c *Catalog) Identities(keys []Key) (gfids []gfid.GFID, ok []bool, err error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	var ar arena
	ik := make([][]byte, len(keys))
	for i, k := range keys {
		ik[i] = putIdentKey(ar.alloc(17), k)
	}
	gfids, ok = make([]gfid.GFID, len(keys)), make([]bool, len(keys))
	err = c.lookup(ik, func(i int, v []byte) error {
		g, err := gfid.FromBytes(v)
		if err != nil {
			return fmt.Errorf("%w: identity %v: %w", ErrCorrupt, keys[i], err)
		}
		gfids[i], ok[i] = g, true
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: identities of %d keys: %w", len(keys), err)
	}
	return gfids, ok, nil
}

// Nodes is Node for many gfids at once: nodes[i] and ok[i] are what
// Node(gs[i]) returns, read in one iterator pass in gfid order.
func (c *Catalog) Nodes(gs []gfid.GFID) (nodes []Node, ok []bool, err error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	var ar arena
	nk := make([][]byte, len(gs))
	for i, g := range gs {
		k := ar.alloc(17)
		k[0] = tabNodes
		copy(k[1:], g[:])
		nk[i] = k
	}
	nodes, ok = make([]Node, len(gs)), make([]bool, len(gs))
	err = c.lookup(nk, func(i int, v []byte) error {
		n, _, _, err := decodeNode(gs[i], v)
		if err != nil {
			return err
		}
		nodes[i], ok[i] = n, true
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: nodes of %d gfids: %w", len(gs), err)
	}
	return nodes, ok, nil
}
