package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
)

// failure is one entry of the durable failure queue: a gfid that a pass
// could not bring up to date, where to look for it again, and why.
type failure struct {
	GFID gfid.GFID `json:"gfid"`
	// Dir and Name locate the entry relative to the source, where the
	// failed operation named it; a live pass re-examines that name. Dir
	// is "" when the pass could not place it (a hybrid crawl retries it).
	Dir      string    `json:"dir"`
	Name     string    `json:"name"`
	Data     bool      `json:"data"` // the data was not shipped
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Attempts int       `json:"attempts"`
}

// failureQueue is the durable failure queue (work dir file "failures"):
// every gfid that still fails after a pass's retries, retried every
// change-interval, each attempt logged with its reason. stime does not
// advance while it is not empty: no failure is ever skipped silently.
type failureQueue struct {
	path  string
	items map[gfid.GFID]*failure
}

func loadFailures(path string) (*failureQueue, error) {
	q := &failureQueue{path: path, items: map[gfid.GFID]*failure{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return q, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failure queue: %w", err)
	}
	var list []*failure
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("failure queue %s: %w (move it away to start afresh: a hybrid crawl retries everything)", path, err)
	}
	for _, f := range list {
		q.items[f.GFID] = f
	}
	return q, nil
}

func (q *failureQueue) len() int { return len(q.items) }

// list returns the queue in the order the failures first happened.
func (q *failureQueue) list() []*failure {
	l := make([]*failure, 0, len(q.items))
	for _, f := range q.items {
		l = append(l, f)
	}
	slices.SortFunc(l, func(a, b *failure) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.GFID.String(), b.GFID.String())
	})
	return l
}

// update records the outcome of a pass: now failed is what still fails. A
// pass that retried the whole queue (retried) resolves every entry not in
// failed; otherwise the entries it did not retry stay.
func (q *failureQueue) update(failed []*failure, retried bool, now time.Time) error {
	next := map[gfid.GFID]*failure{}
	if !retried {
		for g, f := range q.items {
			next[g] = f
		}
	}
	for _, f := range failed {
		if old, ok := q.items[f.GFID]; ok {
			f.Since, f.Attempts = old.Since, old.Attempts
		} else {
			f.Since = now
		}
		f.Attempts++
		f.Last = now
		next[f.GFID] = f
	}
	q.items = next
	return writeJSON(q.path, q.list())
}

// locate finds where the operations of a failed gfid named it: its first
// name in the snapshot, else its synced name in the catalog (a delete).
func locate(g gfid.GFID, snap *crawl.Snapshot, cat *catalog.Catalog) (dir, name string) {
	source, _ := snap.Path(gfid.Root)
	rel := func(parent gfid.GFID, n string) (string, string) {
		p, ok := snap.Path(parent)
		if !ok {
			return "", ""
		}
		r, err := filepath.Rel(source, p)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return "", ""
		}
		return r, n
	}
	if n, ok := snap.Lookup(g); ok && len(n.Links) > 0 {
		return rel(n.Links[0].Parent, n.Links[0].Name)
	}
	if n, ok, err := cat.Node(g); err == nil && ok && len(n.Links) > 0 {
		return rel(n.Links[0].Parent, n.Links[0].Name)
	}
	return "", ""
}
