package catalog

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/georep/georep/rpc/gfid"
)

// Schema 1 was a bbolt file at the catalog's path, with buckets
//
//	meta   "version" → 1
//	ident  Key (16 bytes, big-endian) → gfid
//	keyof  gfid → Key
//	nodes  gfid → node record (version byte 1, unmarshalNodeV1)
//	names  parent gfid + name → gfid
//
// Open migrates it (migrate); nothing writes it any more.
var (
	v1Meta    = []byte("meta")
	v1Ident   = []byte("ident")
	v1KeyOf   = []byte("keyof")
	v1Nodes   = []byte("nodes")
	v1Names   = []byte("names")
	v1Version = []byte("version")
)

// migrate converts the schema-1 bbolt file at path into a store at newPath
// (removed first: a crash mid-migration starts it again), then puts the
// store in its place: path → oldPath, newPath → path, oldPath removed (see
// settle for how an interrupted switch is finished). Identities, nodes and
// names are kept as they are: the gfids on the slave stay the same.
func migrate(path, newPath, oldPath string) error {
	if err := os.RemoveAll(newPath); err != nil {
		return err
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("schema-1 catalog: %w", err)
	}
	err = bdb.View(func(tx *bolt.Tx) error { return convertV1(tx, newPath) })
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(newPath)
		return fmt.Errorf("migrating the schema-1 catalog: %w", err)
	}
	if err := os.Rename(path, oldPath); err != nil {
		return err
	}
	if err := os.Rename(newPath, path); err != nil {
		return err
	}
	if err := syncDir(path); err != nil {
		return err
	}
	return os.Remove(oldPath)
}

// convertV1 writes what tx holds into a new store at dir.
func convertV1(tx *bolt.Tx, dir string) error {
	meta := tx.Bucket(v1Meta)
	buckets := map[string]*bolt.Bucket{}
	for _, name := range [][]byte{v1Ident, v1KeyOf, v1Nodes, v1Names} {
		if buckets[string(name)] = tx.Bucket(name); buckets[string(name)] == nil {
			return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
		}
	}
	if meta == nil {
		return fmt.Errorf("%w: no bucket %q", ErrCorrupt, v1Meta)
	}
	if v := meta.Get(v1Version); len(v) != 1 || v[0] != 1 {
		return fmt.Errorf("%w: schema version %x, this georep knows 1 and %d", ErrCorrupt, v, schemaVersion)
	}
	if err := mkStoreDir(dir); err != nil {
		return err
	}
	db, err := pebble.Open(dir, options(true))
	if err != nil {
		return err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	b := db.NewBatch()
	// put adds to the batch, committed without waiting for the disk every
	// few MB: the last commit (with the schema version) syncs them all.
	put := func(k, v []byte) error {
		b.Set(k, v, nil)
		if b.Len() < 4<<20 {
			return nil
		}
		err := db.Apply(b, pebble.NoSync)
		b.Close()
		b = db.NewBatch()
		return err
	}
	defer func() { b.Close() }()
	keyOf := buckets[string(v1KeyOf)]
	err = buckets[string(v1Ident)].ForEach(func(k, v []byte) error {
		if len(k) != 16 || len(v) != 16 {
			return fmt.Errorf("%w: identity %x → %x", ErrCorrupt, k, v)
		}
		return put(append([]byte{tabIdent}, k...), v)
	})
	if err != nil {
		return err
	}
	nodes := buckets[string(v1Nodes)]
	var count uint64
	var buf []byte
	err = nodes.ForEach(func(k, v []byte) error {
		g, err := gfid.FromBytes(k)
		if err != nil {
			return fmt.Errorf("%w: node key %x", ErrCorrupt, k)
		}
		n, err := unmarshalNodeV1(g, v)
		if err != nil {
			return err
		}
		if n.Type > TypeSocket {
			return fmt.Errorf("%w: node %s of type %d", ErrCorrupt, g, n.Type)
		}
		var key *Key
		if kb := keyOf.Get(k); kb != nil {
			kk, err := keyFromBytes(kb)
			if err != nil {
				return err
			}
			key = &kk
		}
		buf = encodeNode(buf[:0], &n, key)
		count++
		return put(gfidKey(tabNodes, g), buf)
	})
	if err != nil {
		return err
	}
	// The reverse of an identity whose gfid has no node goes to the pending
	// table.
	err = keyOf.ForEach(func(k, v []byte) error {
		g, err := gfid.FromBytes(k)
		if err != nil {
			return fmt.Errorf("%w: reverse identity key %x", ErrCorrupt, k)
		}
		if _, err := keyFromBytes(v); err != nil {
			return err
		}
		if nodes.Get(k) != nil {
			return nil
		}
		return put(gfidKey(tabPending, g), v)
	})
	if err != nil {
		return err
	}
	err = buckets[string(v1Names)].ForEach(func(k, v []byte) error {
		if len(k) < 16 || len(v) != 16 {
			return fmt.Errorf("%w: name index %x → %x", ErrCorrupt, k, v)
		}
		return put(append([]byte{tabNames}, k...), v)
	})
	if err != nil {
		return err
	}
	b.Set(metaCount, binary.AppendUvarint(nil, count), nil)
	b.Set(metaVersion, []byte{schemaVersion}, nil)
	if err := db.Apply(b, pebble.Sync); err != nil {
		return err
	}
	// Flushed, the store opens without replaying a log of the whole catalog.
	if err := db.Flush(); err != nil {
		return err
	}
	err = db.Close()
	db = nil
	if err != nil {
		return err
	}
	return syncDir(dir)
}

const nodeVersionV1 = 1

// unmarshalNodeV1 decodes a node record of schema 1.
func unmarshalNodeV1(g gfid.GFID, b []byte) (Node, error) {
	if len(b) < 2 || b[0] != nodeVersionV1 {
		return Node{}, fmt.Errorf("%w: node %s: unknown record version", ErrCorrupt, g)
	}
	n := Node{GFID: g, Type: Type(b[1])}
	d := &decoder{b: b[2:]}
	n.Mode = d.u32()
	n.UID = d.u32()
	n.GID = d.u32()
	n.Size = d.varint()
	n.MtimeNs = d.varint()
	n.CtimeNs = d.varint()
	n.Rdev = d.uvarint()
	n.Target = string(d.bytes(d.uvarint()))
	if h := d.bytes(d.uvarint()); len(h) > 0 {
		n.XattrHash = append([]byte(nil), h...)
	}
	nl := d.uvarint()
	if nl > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %d links", ErrCorrupt, nl)
	}
	for i := uint64(0); i < nl && d.err == nil; i++ {
		var l Link
		copy(l.Parent[:], d.bytes(16))
		l.Name = string(d.bytes(d.uvarint()))
		n.Links = append(n.Links, l)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if d.err != nil {
		return Node{}, fmt.Errorf("node %s: %w", g, d.err)
	}
	return n, nil
}
