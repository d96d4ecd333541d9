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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// failClass says whether retrying a failure can help.
type failClass string

const (
	// classTransient: retrying may help (the slave's disk fills up, a
	// connection drops, a race with a change on the source, a permission
	// an operator may fix). A failure of an older queue file, which had
	// no class, is transient.
	classTransient failClass = "transient"
	// classPermanent: retrying cannot help without changing the input (a
	// name, gfid or xattr the slave refuses, an operation its filesystem
	// does not support).
	classPermanent failClass = "permanent"
)

// failSide is where a failure happened.
type failSide string

const (
	sideSource failSide = "source" // reading the master's source
	sideSlave  failSide = "slave"  // applying on the slave
)

// failKind is what failed.
type failKind string

const (
	kindEntry failKind = "entry" // an entry op (op says which)
	kindMeta  failKind = "meta"  // a meta op
	kindData  failKind = "data"  // shipping file data (rsync, WriteFiles)
)

// cause is what a failure is classified by, recorded where it happens (the
// slave's per-entry errno, the source's errno), never parsed from a reason.
type cause struct {
	errno syscall.Errno // 0: none known (an rsync run, a call that failed whole)
	side  failSide
	kind  failKind
	op    ops.Op // kindEntry
	// parentPermanent: an ENOENT because a parent in the same pass failed
	// permanently (its children cannot be created either).
	parentPermanent bool
}

// classify is the one table of which failures retrying cannot fix.
//
//	errno                    side    op                       class
//	ENAMETOOLONG, EILSEQ,    any     any                      permanent (the slave's filesystem refuses the name or the operation)
//	  EOPNOTSUPP/ENOTSUP
//	EINVAL                   slave   entry (not RENAME), meta permanent (the slave's validation of name, gfid, mode, target, xattr)
//	EINVAL                   slave   RENAME, data             transient (a move into its own subtree or a gfid of another type on the slave: the slave is behind, a later pass fixes it)
//	EPERM                    slave   any                      permanent (a name, gfid or xattr the slave's access path reserves, a LINK to a directory)
//	E2BIG                    slave   meta                     permanent (an xattr larger than the slave's filesystem takes)
//	ENOENT (parent failed    slave   entry                    permanent (inherits its parent's)
//	  permanently)
//	EACCES, EPERM            source  any                      transient (an operator may fix the permission)
//	anything else, none      any     any                      transient (ENOSPC, EIO, ETIMEDOUT, ENOENT and ESTALE races, connection and session errors, rsync)
func classify(c cause) failClass {
	switch c.errno {
	case 0:
		return classTransient
	case syscall.ENAMETOOLONG, syscall.EILSEQ, syscall.EOPNOTSUPP: // ENOTSUP is EOPNOTSUPP on Linux
		return classPermanent
	case syscall.EINVAL:
		if c.side == sideSlave && (c.kind == kindMeta || (c.kind == kindEntry && c.op != ops.OpRename)) {
			return classPermanent
		}
	case syscall.EPERM:
		if c.side == sideSlave {
			return classPermanent
		}
	case syscall.E2BIG:
		if c.side == sideSlave && c.kind == kindMeta {
			return classPermanent
		}
	case syscall.ENOENT:
		if c.side == sideSlave && c.kind == kindEntry && c.parentPermanent {
			return classPermanent
		}
	}
	return classTransient
}

// errnoSymbol is the symbolic name of errno ("EPERM"), "" for none.
func errnoSymbol(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// slaveErrno is a failure the slave reported for one item, with its errno.
type slaveErrno struct {
	errno syscall.Errno
	err   error
}

func (e *slaveErrno) Error() string { return e.err.Error() }
func (e *slaveErrno) Unwrap() error { return e.err }

// dataCause classifies a data failure from the error the data path returned:
// the slave's errno for a file (slaveErrno), else the source's errno (a
// file the syncer or the small-file path could not stat or read), else none
// (an rsync run, a call that failed whole).
func dataCause(err error) cause {
	c := cause{kind: kindData}
	var se *slaveErrno
	var errno syscall.Errno
	switch {
	case errors.As(err, &se):
		c.errno, c.side = se.errno, sideSlave
	case errors.As(err, &errno):
		c.errno, c.side = errno, sideSource
	}
	return c
}

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
	// Class, Errno (symbolic) and Side come from the cause (classify); a
	// queue file written before they existed loads them empty: transient.
	Class failClass `json:"class,omitempty"`
	Errno string    `json:"errno,omitempty"`
	Side  failSide  `json:"side,omitempty"`
}

// newFailure is a failure of g at dir/name for why, classified by c.
func newFailure(g gfid.GFID, dir, name string, data bool, why string, c cause) *failure {
	return &failure{GFID: g, Dir: dir, Name: name, Data: data, Reason: why,
		Class: classify(c), Errno: errnoSymbol(c.errno), Side: c.side}
}

func (f *failure) permanent() bool { return f.Class == classPermanent }

// class is the failure's class; an old entry without one is transient.
func (f *failure) class() failClass {
	if f.Class == "" {
		return classTransient
	}
	return f.Class
}

// path is where the failure is, relative to the source; "" when unknown.
func (f *failure) path() string {
	if f.Name == "" && f.Dir == "" {
		return ""
	}
	return filepath.Join(f.Dir, f.Name)
}

// describeFailures lists failures for a message: gfid, path, reason, class.
func describeFailures(fs []*failure) string {
	const most = 20
	var b strings.Builder
	for i, f := range fs {
		if i == most {
			fmt.Fprintf(&b, "; and %d more", len(fs)-most)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %q: %s (%s)", f.GFID, f.path(), f.Reason, f.class())
	}
	return b.String()
}

// skipRecord is a failure the operator skipped (georepctl failures skip):
// what it was, when, who asked and why.
type skipRecord struct {
	failure
	Skipped time.Time `json:"skipped"`
	By      string    `json:"by"`
	Why     string    `json:"why"`
}

// skipLine is one line of the skip log (<work dir>/skipped.log).
type skipLine struct {
	Time     time.Time `json:"time"`
	By       any       `json:"by"`
	Worker   string    `json:"worker"`
	GFID     string    `json:"gfid"`
	Path     string    `json:"path"`
	Data     bool      `json:"data"`
	Failure  string    `json:"failure_reason"`
	Class    failClass `json:"class"`
	Errno    string    `json:"errno,omitempty"`
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason"`
}

// failureQueue is the durable failure queue (work dir file "failures"):
// every gfid that still fails after a pass's retries, retried every
// change-interval, each attempt logged with its reason. stime does not
// advance while it is not empty: no failure is ever skipped silently.
//
// It also keeps the operator's skips (work dir file "skipped", each one
// logged in "skipped.log"): a skipped gfid leaves the queue and is not
// queued again when it fails again, until it syncs once or the operator
// retries it.
//
// The worker updates it; the status service skips and retries through it,
// hence the lock.
type failureQueue struct {
	path             string // "failures"
	skipPath, logDir string // "skipped", and the directory of "skipped.log"

	mu      sync.Mutex
	items   map[gfid.GFID]*failure
	skipped map[gfid.GFID]*skipRecord
	// onlySkipped: the last changelog applied named only gfids the
	// operator skipped, and they failed again (oneshot converges on it).
	onlySkipped bool
}

func loadFailures(path string) (*failureQueue, error) {
	dir := filepath.Dir(path)
	q := &failureQueue{path: path, skipPath: filepath.Join(dir, "skipped"), logDir: dir,
		items: map[gfid.GFID]*failure{}, skipped: map[gfid.GFID]*skipRecord{}}
	var list []*failure
	if err := readJSON(path, &list); err != nil {
		return nil, fmt.Errorf("failure queue %s: %w (move it away to start afresh: a hybrid crawl retries everything)", path, err)
	}
	var skips []*skipRecord
	if err := readJSON(q.skipPath, &skips); err != nil {
		return nil, fmt.Errorf("skipped failures %s: %w (move it away: the gfids in it are queued again when they fail)", q.skipPath, err)
	}
	for _, s := range skips {
		q.skipped[s.GFID] = s
	}
	for _, f := range list {
		if q.skipped[f.GFID] == nil { // skipped, then the queue not rewritten yet
			q.items[f.GFID] = f
		}
	}
	return q, nil
}

// readJSON reads the JSON file path into v; a missing file leaves v alone.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (q *failureQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// list returns the queue in the order the failures first happened.
func (q *failureQueue) list() []*failure {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sorted()
}

func (q *failureQueue) sorted() []*failure {
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
	q.mu.Lock()
	defer q.mu.Unlock()
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
	for g := range q.skipped {
		delete(next, g)
	}
	q.items = next
	return writeJSON(q.path, q.sorted())
}

// resolveBefore forgets the failures not met again since t: a hybrid crawl
// that started at t re-examined every gfid, and those did not fail again.
func (q *failureQueue) resolveBefore(t time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items)
	for g, f := range q.items {
		if f.Last.Before(t) {
			delete(q.items, g)
		}
	}
	if len(q.items) == n {
		return nil
	}
	return writeJSON(q.path, q.sorted())
}

// permanentOnly returns the queue when every failure in it is permanent,
// nil when it is empty or any may yet be fixed by retrying.
func (q *failureQueue) permanentOnly() []*failure {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	for _, f := range q.items {
		if !f.permanent() {
			return nil
		}
	}
	return q.sorted()
}

// dropSkipped returns the failures of failed that the operator has not
// skipped, and those skipped.
func (q *failureQueue) dropSkipped(failed []*failure) (kept, dropped []*failure) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range failed {
		if q.skipped[f.GFID] != nil {
			dropped = append(dropped, f)
		} else {
			kept = append(kept, f)
		}
	}
	return kept, dropped
}

// isSkipped says whether the operator skipped g.
func (q *failureQueue) isSkipped(g gfid.GFID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.skipped[g] != nil
}

// synced forgets the skips of the gfids of ok (each synced once) and
// returns those it forgot.
func (q *failureQueue) synced(ok []gfid.GFID) ([]*skipRecord, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var forgot []*skipRecord
	for _, g := range ok {
		if s := q.skipped[g]; s != nil {
			forgot = append(forgot, s)
			delete(q.skipped, g)
		}
	}
	if len(forgot) == 0 {
		return nil, nil
	}
	return forgot, q.writeSkipped()
}

func (q *failureQueue) setOnlySkipped(v bool) {
	q.mu.Lock()
	q.onlySkipped = v
	q.mu.Unlock()
}

func (q *failureQueue) lastOnlySkipped() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.onlySkipped
}

// skippedList returns the skips, oldest first.
func (q *failureQueue) skippedList() []*skipRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := make([]*skipRecord, 0, len(q.skipped))
	for _, s := range q.skipped {
		l = append(l, s)
	}
	slices.SortFunc(l, func(a, b *skipRecord) int {
		if c := a.Skipped.Compare(b.Skipped); c != 0 {
			return c
		}
		return strings.Compare(a.GFID.String(), b.GFID.String())
	})
	return l
}

// skipLogPath is the skip log, one JSON line per skip.
func (q *failureQueue) skipLogPath() string { return filepath.Join(q.logDir, "skipped.log") }

// skip lifts the queued failure of g: a line in the skip log first (so
// that no skip goes unrecorded), then the skip set, then the queue without
// it. by is who asked (logged as it is, and as by.String() in the set);
// ok is false when the queue does not hold g.
func (q *failureQueue) skip(g gfid.GFID, worker string, by fmt.Stringer, why string, now time.Time) (rec *skipRecord, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.items[g]
	if f == nil {
		return nil, false, nil
	}
	line := skipLine{Time: now.UTC(), By: by, Worker: worker, GFID: g.String(), Path: f.path(), Data: f.Data,
		Failure: f.Reason, Class: f.class(), Errno: f.Errno, Since: f.Since, Attempts: f.Attempts, Reason: why}
	b, err := json.Marshal(line)
	if err != nil {
		return nil, false, err
	}
	if err := appendSync(q.skipLogPath(), append(b, '\n')); err != nil {
		return nil, false, fmt.Errorf("skip log: %w", err)
	}
	rec = &skipRecord{failure: *f, Skipped: now, By: by.String(), Why: why}
	q.skipped[g] = rec
	if err := q.writeSkipped(); err != nil {
		delete(q.skipped, g)
		return nil, false, err
	}
	delete(q.items, g)
	if err := writeJSON(q.path, q.sorted()); err != nil {
		return nil, false, err
	}
	return rec, true, nil
}

// unskip puts every skipped gfid back into the queue (the operator retries
// them) and returns how many there were.
func (q *failureQueue) unskip(now time.Time) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.skipped)
	if n == 0 {
		return 0, nil
	}
	for g, s := range q.skipped {
		f := s.failure
		f.Last = now
		q.items[g] = &f
	}
	if err := writeJSON(q.path, q.sorted()); err != nil {
		return 0, err
	}
	clear(q.skipped)
	return n, q.writeSkipped()
}

func (q *failureQueue) writeSkipped() error {
	l := make([]*skipRecord, 0, len(q.skipped))
	for _, s := range q.skipped {
		l = append(l, s)
	}
	slices.SortFunc(l, func(a, b *skipRecord) int { return strings.Compare(a.GFID.String(), b.GFID.String()) })
	return writeJSON(q.skipPath, l)
}

// appendSync appends b to the file at path (created 0600) and syncs it.
func appendSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
