package catalog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/georep/georep/rpc/gfid"
)

// Commit records, in one atomic write, nodes as the new synced state of
// their gfids and forgets the deleted gfids: their node records, their names
// in the index and their identity (so the gfid is never handed out again). A
// deleted gfid may have no node (an identity assigned but never synced).
// Of a gfid given twice, the last record wins.
func (c *Catalog) Commit(nodes []Node, deleted []gfid.GFID) error {
	for i := range nodes {
		if nodes[i].GFID.IsZero() {
			return errors.New("catalog: commit of a node with zero gfid")
		}
		if nodes[i].Type > TypeSocket {
			return fmt.Errorf("catalog: commit of node %s of unknown type %d", nodes[i].GFID, nodes[i].Type)
		}
	}
	if len(nodes)+len(deleted) > 1<<31-1 {
		return fmt.Errorf("catalog: commit of %d gfids", len(nodes)+len(deleted))
	}
	if err := c.check(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.commit(nodes, deleted); err != nil {
		return fmt.Errorf("catalog: commit: %w", err)
	}
	return nil
}

// commitEntry is what a commit knows of one gfid it names.
type commitEntry struct {
	g       gfid.GFID
	key     Key   // the reverse of its identity, if hasKey
	seq     int32 // its place in the call: nodes, then deleted
	node    int32 // index in nodes of its new record; -1: none
	gone    bool  // deleted
	hasKey  bool
	pending bool   // the key is in the pending table
	old     []byte // its record as stored; nil: none
}

// nameOp is a change of the names index: the name set to g, or removed
// where it still points at g (seq -1).
type nameOp struct {
	key []byte
	g   gfid.GFID
	seq int32
}

// commit reads everything it changes table by table, each in one pass in
// key order (a lookup), and writes its batch in key order too: Pebble sorts
// a large batch when it becomes a memtable, and sorted input makes that
// linear. What it holds meanwhile is the batch and about as much again of
// keys and old records (ARCHITECTURE.md measures it).
func (c *Catalog) commit(nodes []Node, deleted []gfid.GFID) error {
	var ar arena
	ents := make([]commitEntry, 0, len(nodes)+len(deleted))
	for i := range nodes {
		ents = append(ents, commitEntry{g: nodes[i].GFID, seq: int32(i), node: int32(i)})
	}
	for j, g := range deleted {
		ents = append(ents, commitEntry{g: g, seq: int32(len(nodes) + j), node: -1, gone: true})
	}
	slices.SortFunc(ents, func(a, b commitEntry) int {
		if c := bytes.Compare(a.g[:], b.g[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	ents = mergeEntries(ents)

	// What each gfid had: its record (with the reverse of its identity) or
	// a pending reverse, which wins.
	keys := make([][]byte, len(ents))
	for i := range ents {
		k := ar.alloc(17)
		k[0] = tabNodes
		copy(k[1:], ents[i].g[:])
		keys[i] = k
	}
	oldLinks := 0
	err := c.lookup(keys, func(i int, v []byte) error {
		e := &ents[i]
		e.old = ar.clone(v)
		r, err := viewRecord(v)
		if err != nil {
			return fmt.Errorf("node %s: %w", e.g, err)
		}
		e.key, e.hasKey = r.key, r.hasKey
		oldLinks += r.nlinks
		return nil
	})
	if err != nil {
		return err
	}
	for i := range keys {
		keys[i][0] = tabPending
	}
	err = c.lookup(keys, func(i int, v []byte) error {
		k, err := keyFromBytes(v)
		if err != nil {
			return err
		}
		ents[i].key, ents[i].hasKey, ents[i].pending = k, true, true
		return nil
	})
	if err != nil {
		return err
	}

	// The names index: every old name of a gfid named goes where it still
	// points at it, every new one is set (and wins over a removal) unless
	// it already points where it should.
	newLinks := 0
	for i := range nodes {
		newLinks += len(nodes[i].Links)
	}
	ops := make([]nameOp, 0, oldLinks+newLinks)
	for i := range ents {
		if ents[i].old == nil {
			continue
		}
		r, err := viewRecord(ents[i].old)
		if err != nil {
			return fmt.Errorf("node %s: %w", ents[i].g, err)
		}
		err = r.forEachLink(func(parent, name []byte) {
			k := ar.alloc(17 + len(name))
			k[0] = tabNames
			copy(k[1:], parent)
			copy(k[17:], name)
			ops = append(ops, nameOp{key: k, g: ents[i].g, seq: -1})
		})
		if err != nil {
			return fmt.Errorf("node %s: %w", ents[i].g, err)
		}
	}
	keys = keys[:0]
	for i := range ops {
		keys = append(keys, ops[i].key)
	}
	points := make([]bool, len(ops))
	err = c.lookup(keys, func(i int, v []byte) error {
		points[i] = bytes.Equal(v, ops[i].g[:])
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	for i := range ops {
		if points[i] {
			ops[n] = ops[i]
			n++
		}
	}
	ops = ops[:n]
	for i := range nodes {
		for _, l := range nodes[i].Links {
			k := ar.alloc(17 + len(l.Name))
			k[0] = tabNames
			copy(k[1:], l.Parent[:])
			copy(k[17:], l.Name)
			ops = append(ops, nameOp{key: k, g: nodes[i].GFID, seq: int32(i)})
		}
	}
	slices.SortFunc(ops, func(a, b nameOp) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})

	// The identities of the deleted gfids, where the key is still theirs.
	keys = keys[:0]
	var owners []gfid.GFID
	for i := range ents {
		if e := &ents[i]; e.gone && e.hasKey {
			keys = append(keys, identKey(e.key))
			owners = append(owners, e.g)
		}
	}
	identDel := make([][]byte, 0, len(keys))
	err = c.lookup(keys, func(i int, v []byte) error {
		if bytes.Equal(v, owners[i][:]) {
			identDel = append(identDel, keys[i])
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(identDel, bytes.Compare)

	count := c.count.Load()
	size := 64
	for i := range ents {
		e := &ents[i]
		switch {
		case e.old != nil && e.node < 0:
			count--
		case e.old == nil && e.node >= 0:
			count++
		}
		size += 2 * 24
		if e.node >= 0 {
			n := &nodes[e.node]
			size += 64 + len(n.Target) + len(n.XattrHash)
			for _, l := range n.Links {
				size += 24 + len(l.Name)
			}
		}
	}
	for i := range ops {
		size += len(ops[i].key) + 24
	}
	size += len(identDel) * 24

	b := c.db.NewBatchWithSize(size)
	defer b.Close()
	garbage := 0 // keys replaced or deleted
	for i := 0; i < len(ops); {
		j := i + 1
		for j < len(ops) && bytes.Equal(ops[j].key, ops[i].key) {
			j++
		}
		last := &ops[j-1] // the last set, or a removal
		switch {
		case last.seq < 0:
			b.Delete(last.key, nil)
			garbage++
		case ops[i].seq >= 0 || ops[i].g != last.g: // not already pointing there
			b.Set(last.key, last.g[:], nil)
			if ops[i].seq < 0 {
				garbage++
			}
		}
		i = j
	}
	for _, k := range identDel {
		b.Delete(k, nil)
	}
	garbage += len(identDel)
	b.Set(metaCount, binary.AppendUvarint(nil, uint64(count)), nil)
	var buf []byte
	for i := range ents {
		e := &ents[i]
		switch {
		case e.node >= 0:
			var key *Key
			if e.hasKey && !e.gone { // deleted and given again: without identity
				key = &e.key
			}
			buf = encodeNode(buf[:0], &nodes[e.node], key)
			if !bytes.Equal(buf, e.old) {
				b.Set(gfidKey(tabNodes, e.g), buf, nil)
				if e.old != nil {
					garbage++
				}
			}
		case e.old != nil:
			b.Delete(gfidKey(tabNodes, e.g), nil)
			garbage++
		}
	}
	for i := range ents {
		if ents[i].pending {
			b.Delete(gfidKey(tabPending, ents[i].g), nil)
			garbage++
		}
	}
	if err := c.db.Apply(b, pebble.Sync); err != nil {
		return err
	}
	c.count.Store(count)
	c.wrote(garbage)
	return nil
}

// mergeEntries folds the entries of one gfid (adjacent, in call order)
// into one: the last record given, deleted if any says so.
func mergeEntries(ents []commitEntry) []commitEntry {
	out := ents[:0]
	for _, e := range ents {
		if n := len(out); n > 0 && out[n-1].g == e.g {
			if e.node >= 0 {
				out[n-1].node = e.node
			}
			out[n-1].gone = out[n-1].gone || e.gone
			continue
		}
		out = append(out, e)
	}
	return out
}

// lookup calls fn(i, v) for every keys[i] that exists, with its value v
// (valid during fn only): one iterator pass in key order, so that a large
// set of keys costs a scan of the blocks that hold them rather than a
// lookup each.
func (c *Catalog) lookup(keys [][]byte, fn func(i int, v []byte) error) error {
	if len(keys) == 0 {
		return nil
	}
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(keys[a], keys[b]) })
	upper := append(slices.Clone(keys[order[len(order)-1]]), 0)
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: keys[order[0]], UpperBound: upper})
	if err != nil {
		return err
	}
	for _, i := range order {
		if !it.SeekGE(keys[i]) {
			break // nothing at or after this key, so none after it either
		}
		if !bytes.Equal(it.Key(), keys[i]) {
			continue
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(int(i), v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// arena hands out byte slices carved from larger blocks: a commit's keys and
// records cost no allocation each.
type arena struct{ buf []byte }

func (a *arena) alloc(n int) []byte {
	if len(a.buf)+n > cap(a.buf) {
		a.buf = make([]byte, 0, max(n, 256<<10))
	}
	a.buf = a.buf[:len(a.buf)+n]
	return a.buf[len(a.buf)-n : len(a.buf) : len(a.buf)]
}

func (a *arena) clone(b []byte) []byte {
	s := a.alloc(len(b))
	copy(s, b)
	return s
}
