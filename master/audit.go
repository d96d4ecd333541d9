package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/bwlimit"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// The audit (issue "prove the replica") compares the slave's replica with
// what the master synced, entry by entry, and repairs what differs through
// the normal pipeline. It walks the catalog, not the source: the catalog is
// what the slave is believed to hold, so every difference the slave's
// description shows is drift (a replica changed behind georep's back, or a
// bug); at the end of a round a hybrid crawl compares the source with the
// catalog, which finds what the change detector missed. Round by round:
//
//   - the catalog's directories depth first, in name order, up to
//     auditDirsPerCall of them per Audit call: the slave lists each once
//     and describes every name (gfid, type, mode, owner, size, mtime,
//     symlink target, inode number, a digest of its user.* xattrs and, with
//     content, an xxh3 digest of a regular file's data computed on the
//     slave), so no file crosses the link;
//   - a difference is logged with the entry's path and what differed, and
//     repaired as verify repairs: a name the master does not have is
//     purged (max-delete guard; not by a worker that holds part of the
//     namespace, nor with ignore-deletes), a name the slave lacks or holds
//     wrongly is forgotten in the catalog (Unsync) so that the hybrid crawl
//     that follows the step recreates it, and an entry whose attributes,
//     xattrs or data differ is marked in the catalog as not synced in
//     that respect, so that the crawl ships it again;
//   - it runs only while the worker has nothing else to do, one call at a
//     time, and waits between calls so as to stay under audit-rate (every
//     entry counts as auditEntryCost bytes, a digested file as its size);
//   - its place (the directories left to audit) is saved in the work dir,
//     so a restarted master goes on where it stopped.

// auditEntryCost is what one entry described costs against audit-rate.
const auditEntryCost = 4096

// auditDirsPerCall bounds the directories of one Audit call (the slave's
// max-batch bounds it too).
const auditDirsPerCall = 64

// auditLogLimit bounds the differences logged one by one per round.
const auditLogLimit = 1000

// auditInFlight bounds the Audit calls of one step.
const auditInFlight = 4

// auditRetry is the wait after an audit call failed.
const auditRetry = 30 * time.Second

// auditStatus is one worker's audit as status shows it.
type auditStatus struct {
	Started, Finished time.Time
	Content           bool
	Entries           int64 `json:"entries"`
	Files             int64 `json:"files"`
	Bytes             int64 `json:"bytes"`
	Differences       int64
	Repaired          int64
	ByKind            map[string]int64
	Running           bool
	Err               string
	Next              time.Time
}

// auditDirRef is a directory of the catalog to audit, with its path
// relative to the source.
type auditDirRef struct {
	G gfid.GFID `json:"g"`
	P string    `json:"p"`
}

// auditSaved is what <work-dir>/audit.json keeps.
type auditSaved struct {
	Last        auditStatus   `json:"last"`
	LastPlain   time.Time     `json:"last_plain"`
	LastContent time.Time     `json:"last_content"`
	Round       *auditRound   `json:"round,omitempty"`
	Stack       []auditDirRef `json:"stack,omitempty"`
	// Pending: differences found whose repair pass has not run yet.
	Pending int64 `json:"pending,omitempty"`
}

// auditRound is the round running.
type auditRound struct {
	Content bool      `json:"content"`
	Started time.Time `json:"started"`
}

// auditor is a worker's audit. Its fields but mu's are the worker
// goroutine's.
type auditor struct {
	interval, contentInterval time.Duration // 0: off
	rate                      bwlimit.Rate  // 0: no bound
	path                      string

	mu     sync.Mutex
	status auditStatus // the last round, or the one running
	want   *bool       // a round the operator asked for (content or not)

	lastPlain, lastContent time.Time // the last rounds that ended
	round                  *auditRound
	stack                  []auditDirRef
	cont                   *auditCont // a directory the slave cut short
	inos                   map[gfid.GFID]uint64
	notBefore              time.Time
	saved                  time.Time
	pending                int64 // differences waiting for the repair pass
	crawlAfter             bool  // the round's closing hybrid crawl is due
	logged                 int
	timer                  *time.Timer
}

// auditCont is a directory the slave described in part: the entries so far.
type auditCont struct {
	ref     auditDirRef
	entries []ops.AuditEntry
}

// newAuditor loads the audit's state from path.
func newAuditor(cfg Config, path string) (*auditor, error) {
	a := &auditor{interval: cfg.AuditInterval, contentInterval: cfg.AuditContentInterval, rate: cfg.AuditRate, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// The first rounds are due one interval after the first start.
		a.lastPlain = time.Now()
		a.lastContent = a.lastPlain
		return a, a.save()
	}
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	var s auditSaved
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("audit state %s: %w (remove the file to start afresh)", path, err)
	}
	a.status, a.lastPlain, a.lastContent, a.round, a.stack, a.pending = s.Last, s.LastPlain, s.LastContent, s.Round, s.Stack, s.Pending
	if a.status.ByKind == nil {
		a.status.ByKind = map[string]int64{}
	}
	if a.round != nil {
		a.status.Running = true
		a.inos = map[gfid.GFID]uint64{} // a hardlink group cut by the restart is compared from its next name on
	}
	return a, nil
}

func (a *auditor) save() error {
	a.mu.Lock()
	s := auditSaved{Last: a.status, LastPlain: a.lastPlain, LastContent: a.lastContent, Round: a.round, Pending: a.pending}
	a.mu.Unlock()
	if a.round != nil {
		s.Stack = a.stack
		if a.cont != nil {
			s.Stack = append(slices.Clip(s.Stack), a.cont.ref) // described again from its start
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	a.saved = time.Now()
	return atomicfile.Write(a.path, b, 0o600)
}

// snapshot is the audit's status, safe from any goroutine.
func (a *auditor) snapshot() auditStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.ByKind = maps.Clone(a.status.ByKind)
	return s
}

// request asks for a round now (with content: file contents compared too).
func (a *auditor) request(content bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.want != nil && *a.want {
		return
	}
	a.want = &content
}

// due says whether a round must start now, and whether with content; when
// none is due it returns when the next one is (zero: none).
func (a *auditor) due(now time.Time) (start, content bool, next time.Time) {
	a.mu.Lock()
	want := a.want
	a.want = nil
	a.mu.Unlock()
	if want != nil {
		return true, *want, time.Time{}
	}
	if a.contentInterval > 0 && !now.Before(a.lastContent.Add(a.contentInterval)) {
		return true, true, time.Time{}
	}
	if a.interval > 0 {
		if next = a.lastPlain.Add(a.interval); !now.Before(next) {
			return true, false, time.Time{}
		}
	}
	if a.contentInterval > 0 {
		if c := a.lastContent.Add(a.contentInterval); next.IsZero() || c.Before(next) {
			next = c
		}
	}
	return false, false, next
}

// arm wakes the worker at t (zero: never).
func (w *worker) auditArm(t time.Time) {
	a := w.audit
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Lock()
	if a.round == nil {
		a.status.Next = t
	}
	a.mu.Unlock()
	if t.IsZero() {
		return
	}
	a.timer = time.AfterFunc(time.Until(t), func() {
		w.auditWoke.Store(true)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	})
}

// auditStep runs one step of the audit when one is due, and says whether
// it did: the worker loop calls it when it has nothing else to do.
func (w *worker) auditStep(ctx context.Context) bool {
	a := w.audit
	if a == nil || a.crawlAfter {
		return false
	}
	now := time.Now()
	if a.round == nil || (a.wantContent() && !a.round.Content) {
		start, content, next := a.due(now)
		if !start {
			w.auditArm(next)
			return false
		}
		w.auditStart(content, now)
	}
	if len(a.stack) == 0 && a.cont == nil {
		// Every directory compared and what differed repaired: the
		// hybrid crawl that closes the round compares the source with
		// the catalog (what it ships counts as "unsynced").
		a.crawlAfter, w.needFull = true, true
		if err := a.save(); err != nil {
			w.log.Warn("audit: saving its place", "err", err)
		}
		return true
	}
	if now.Before(a.notBefore) {
		w.auditArm(a.notBefore)
		return false
	}
	if err := w.connect(ctx); err != nil {
		if ctx.Err() == nil {
			w.auditFailed(fmt.Errorf("connecting to the slave: %w", err))
		}
		return false
	}
	if have, _ := w.client.auditCaps(); !have {
		w.auditEnd(errors.New("the slave cannot be audited (its georep-slave predates the audit: upgrade it)"))
		return false
	}
	cost, retry, err := w.auditCall(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return false
	case err != nil && retry:
		w.auditFailed(err)
		return false
	case err != nil:
		w.auditEnd(err) // a guard refused the repair, or the catalog failed: the operator must look
		return true
	}
	if a.rate > 0 {
		a.notBefore = time.Now().Add(time.Duration(float64(cost) / float64(a.rate) * float64(time.Second)))
	}
	if a.pending > 0 {
		w.needFull = true // repair now (a hybrid crawl ships what was marked), then go on
	}
	// Saved every 5 s, before a wait of the rate of a second or more, and
	// when repairs are pending.
	if a.pending > 0 || time.Since(a.saved) >= 5*time.Second || time.Until(a.notBefore) >= time.Second {
		if err := a.save(); err != nil {
			w.log.Warn("audit: saving its place", "err", err)
		}
	}
	return true
}

func (a *auditor) wantContent() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want != nil && *a.want
}

func (w *worker) auditStart(content bool, now time.Time) {
	a := w.audit
	a.round = &auditRound{Content: content, Started: now}
	a.stack, a.cont, a.inos, a.logged, a.pending = []auditDirRef{{G: gfid.Root}}, nil, map[gfid.GFID]uint64{}, 0, 0
	a.mu.Lock()
	a.status = auditStatus{Started: now, Content: content, Running: true, ByKind: map[string]int64{}}
	a.mu.Unlock()
	w.log.Info("audit started: comparing the replica with what was synced", "content", content)
}

// auditFailed records why a step failed; the round goes on after a wait.
func (w *worker) auditFailed(err error) {
	a := w.audit
	a.mu.Lock()
	a.status.Err = err.Error()
	a.mu.Unlock()
	a.notBefore = time.Now().Add(auditRetry)
	w.auditArm(a.notBefore)
	w.log.Warn("audit: a step failed; going on later", "err", err, "retry_in", auditRetry)
}

// auditEnd ends the round (err: why it stopped short).
func (w *worker) auditEnd(err error) {
	a := w.audit
	now := time.Now()
	a.mu.Lock()
	a.status.Running = false
	a.status.Finished = now
	if err != nil {
		a.status.Err = err.Error()
	}
	st := a.status
	a.mu.Unlock()
	if a.round != nil {
		a.lastPlain = now
		if a.round.Content {
			a.lastContent = now
		}
	}
	a.round, a.stack, a.cont, a.inos, a.crawlAfter = nil, nil, nil, nil, false
	if serr := a.save(); serr != nil {
		w.log.Warn("audit: saving its state", "err", serr)
	}
	if err != nil {
		w.log.Error("audit stopped short", "err", err)
		return
	}
	w.log.Info("audit finished", "duration", st.Finished.Sub(st.Started).Round(time.Millisecond), "entries", st.Entries,
		"files_hashed", st.Files, "bytes_hashed", st.Bytes, "differences", st.Differences, "repaired", st.Repaired, "by_kind", st.ByKind)
}

// auditAfterPass takes in the hybrid crawl's outcome (err from pass, st its
// totals): the repairs of the differences found are done when it ran and
// left no failure; after the round's closing crawl, what it changed counts
// as "unsynced" (the source had changes the catalog did not), and the round
// ends.
func (w *worker) auditAfterPass(err error, st crawl.Stats) {
	a := w.audit
	if a == nil {
		return
	}
	ok := ran(err) && w.failures.len() == 0
	if a.round != nil && !a.crawlAfter && a.pending > 0 && !ok {
		// The repair did not go through: a round that went on would
		// ask for it again and again.
		if err == nil {
			err = fmt.Errorf("%d failures left (georepctl failures)", w.failures.len())
		}
		w.auditEnd(fmt.Errorf("repairing what the audit found: %w", err))
		return
	}
	a.mu.Lock()
	if ok {
		a.status.Repaired += a.pending
		a.pending = 0
	}
	var unsynced int64
	if a.crawlAfter && ok {
		unsynced = st.Entries + st.Data + st.Meta
		if unsynced > 0 {
			a.status.Differences += unsynced
			a.status.Repaired += unsynced
			a.status.ByKind["unsynced"] += unsynced
		}
	}
	a.mu.Unlock()
	if unsynced > 0 {
		w.log.Warn("audit: the source held changes the master had not synced; the closing crawl shipped them", "changes", unsynced)
		w.auditFound("unsynced", unsynced)
	}
	if a.crawlAfter {
		if ok {
			w.auditEnd(nil)
		} else if err != nil {
			w.auditEnd(fmt.Errorf("the repair pass failed: %w", err))
		} else {
			w.auditEnd(fmt.Errorf("the repair pass left %d failures (georepctl failures)", w.failures.len()))
		}
	}
}

// auditCall describes the next directories on the slave, compares them and
// repairs what differs. It returns the step's cost against audit-rate; an
// error is retryable when the call failed (the round goes on later).
func (w *worker) auditCall(ctx context.Context) (cost int64, retryable bool, err error) {
	a := w.audit
	limit := min(auditDirsPerCall, max(w.batch, 1))
	// Up to auditInFlight calls at once (one when a directory cut short
	// goes on): on a WAN a round costs round trips, not bandwidth.
	var calls [][]auditDirRef
	var after string
	n := auditInFlight
	if a.cont != nil {
		after = a.cont.entries[len(a.cont.entries)-1].Name
		calls, n = [][]auditDirRef{{a.cont.ref}}, 1
	}
	pop := func(call []auditDirRef) []auditDirRef {
		for len(call) < limit && len(a.stack) > 0 {
			call = append(call, a.stack[len(a.stack)-1])
			a.stack = a.stack[:len(a.stack)-1]
		}
		return call
	}
	if len(calls) == 1 {
		calls[0] = pop(calls[0])
	}
	for len(calls) < n && len(a.stack) > 0 {
		calls = append(calls, pop(nil))
	}
	answers := make([][]ops.AuditDir, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for k, refs := range calls {
		reqs := make([]ops.AuditDirRequest, len(refs))
		for i, r := range refs {
			reqs[i] = ops.AuditDirRequest{GFID: r.G}
		}
		if k == 0 && a.cont != nil {
			reqs[0].After = after
		}
		wg.Go(func() {
			answers[k], errs[k] = w.client.Audit(ctx, reqs, a.round.Content)
			if errs[k] == nil && len(answers[k]) == 0 {
				errs[k] = errors.New("audit: the slave described no directory")
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// All go back (a directory cut short stays where it was): they
		// are described again.
		for k := len(calls) - 1; k >= 0; k-- {
			refs := calls[k]
			if k == 0 && a.cont != nil {
				refs = refs[1:]
			}
			a.stack = append(a.stack, reversed(refs)...)
		}
		return 0, true, err
	}
	// The directories the slave left out go back, in order (the first
	// call's on top).
	for k := len(calls) - 1; k >= 0; k-- {
		a.stack = append(a.stack, reversed(calls[k][len(answers[k]):])...)
	}
	_, owner := w.client.auditCaps()
	j := &auditJudge{w: w, owner: owner, skip: w.auditSkips()}
	cont := a.cont
	a.cont = nil
	for k, dirs := range answers {
		for i, d := range dirs {
			ref := calls[k][i]
			ents := d.Entries
			if cont != nil && k == 0 && i == 0 {
				ents = append(cont.entries, ents...)
			}
			if d.More && d.Err == nil && len(ents) > 0 {
				if a.cont == nil {
					a.cont = &auditCont{ref: ref, entries: ents}
				} else {
					a.stack = append(a.stack, ref) // one goes on at a time: this one is described again whole
				}
				continue
			}
			if err := j.dir(ref, ents, d.Err); err != nil {
				return 0, false, err
			}
		}
	}
	for i := len(j.subdirs) - 1; i >= 0; i-- {
		a.stack = append(a.stack, j.subdirs[i])
	}
	if err := j.repair(ctx); err != nil {
		return 0, false, err
	}
	a.mu.Lock()
	a.status.Entries += j.entries
	a.status.Files += j.files
	a.status.Bytes += j.bytes
	a.status.Differences += j.found
	for k, n := range j.kinds {
		a.status.ByKind[k] += n
	}
	a.mu.Unlock()
	a.pending += j.found
	for k, n := range j.kinds {
		w.auditFound(k, n)
	}
	return j.entries*auditEntryCost + j.bytes, false, nil
}

func reversed(refs []auditDirRef) []auditDirRef {
	out := slices.Clone(refs)
	slices.Reverse(out)
	return out
}

// auditSkips are the gfids the audit leaves alone: failures queued, data
// waiting for the next pass. Their state on the slave is known to lag.
func (w *worker) auditSkips() map[gfid.GFID]bool {
	skip := map[gfid.GFID]bool{}
	for _, f := range w.failures.list() {
		skip[f.GFID] = true
	}
	for g := range w.staleData {
		skip[g] = true
	}
	return skip
}

// auditJudge compares the directories of one step and collects the
// repairs.
type auditJudge struct {
	w       *worker
	owner   bool // compare owners
	skip    map[gfid.GFID]bool
	subdirs []auditDirRef

	entries, files, bytes, found int64
	behind                       int64 // names where the catalog, not the slave, was behind the brick
	kinds                        map[string]int64
	purges                       []purge
	unsync                       []gfid.GFID
	taints                       map[gfid.GFID]*catalog.Node
}

// differ records a difference of kind at path.
func (j *auditJudge) differ(kind, path string, g gfid.GFID, what string) {
	j.found++
	if j.kinds == nil {
		j.kinds = map[string]int64{}
	}
	j.kinds[kind]++
	a := j.w.audit
	if a.logged < auditLogLimit {
		j.w.log.Warn("audit: the replica differs from what was synced; repairing", "path", path, "gfid", gfidText(g), "kind", kind, "difference", what)
	} else if a.logged == auditLogLimit {
		j.w.log.Warn("audit: more differences; not logging them one by one any more this round (status shows the counts)")
	}
	a.logged++
}

// catalogBehind says, for a brick worker, whether the brick itself holds
// at path what the slave holds there (slaveHas, or nothing when !present)
// where the catalog says otherwise. Each worker of a replica set keeps its
// own catalog, and the changes the set's other worker synced while this
// one was Passive are not in it (it starts again from the set's stime): the
// slave is right, and the hybrid crawl that closes the round relearns the
// name. Purging it would delete good data on a guess. A plain source, or a
// brick that cannot be read there, says false: the difference stands.
func (j *auditJudge) catalogBehind(path string, slaveHas gfid.GFID, present bool) bool {
	b := j.w.brick
	if b == nil {
		return false
	}
	g, err := glusterfs.BrickGFID(filepath.Join(b.path, path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if present {
			return false
		}
	case err != nil || !present || g != slaveHas:
		return false
	}
	j.behind++
	if j.behind <= auditLogLimit {
		j.w.log.Info("audit: the slave holds what the brick holds, the catalog is behind it (synced by the replica set's other worker); the round's crawl relearns it",
			"path", path, "gfid", gfidText(slaveHas))
	}
	return true
}

// taint marks node n of the catalog as not synced in respect what
// ("data": its data and attributes, "attr": its attributes, "xattrs").
func (j *auditJudge) taint(n catalog.Node, what string) {
	if j.taints == nil {
		j.taints = map[gfid.GFID]*catalog.Node{}
	}
	t := j.taints[n.GFID]
	if t == nil {
		t = &n
		j.taints[n.GFID] = t
	}
	switch what {
	case "data":
		t.MtimeNs = -1
	case "attr":
		t.Mode ^= 0o7777 // the crawl sees another mode: it sets mode, owner and times again
	case "xattrs":
		t.XattrHash = []byte{0}
	}
}

// dir compares directory ref of the catalog with the slave's description
// of it (ents, or the error it could not be described with).
func (j *auditJudge) dir(ref auditDirRef, ents []ops.AuditEntry, lerr error) error {
	w := j.w
	if slaveDirGone(lerr) {
		if !j.skip[ref.G] {
			j.differ("missing", "/"+ref.P, ref.G, "the directory is not on the slave: "+lerr.Error())
			j.unsync = append(j.unsync, ref.G)
		}
		return nil
	}
	if lerr != nil {
		return lerr
	}
	j.entries += int64(len(ents))
	want := map[string]gfid.GFID{}
	if err := w.cat.ForEachChild(ref.G, func(name string, g gfid.GFID) error { want[name] = g; return nil }); err != nil {
		return err
	}
	purgedIn := false
	for _, e := range ents {
		path := "/" + filepath.Join(ref.P, e.Name)
		g, mine := want[e.Name]
		delete(want, e.Name)
		switch {
		case mine && j.skip[g]:
			continue
		case !mine:
			if w.cfg.IgnoreDeletes || w.partial || j.catalogBehind(path, e.GFID, true) {
				continue
			}
			j.differ("extra", path, e.GFID, "the master has no such name")
			j.purges = append(j.purges, purge{ref.G, e.Name, e.GFID})
			purgedIn = true
			continue
		case e.GFID != g:
			if j.catalogBehind(path, e.GFID, true) {
				continue
			}
			j.differ("gfid", path, e.GFID, fmt.Sprintf("holds gfid %s, the master's is %s", gfidText(e.GFID), g))
			j.unsync = append(j.unsync, g)
			if !w.partial {
				j.purges = append(j.purges, purge{ref.G, e.Name, e.GFID})
				purgedIn = true
			}
			continue
		}
		n, ok, err := w.cat.Node(g)
		if err != nil {
			return err
		}
		if !ok {
			continue // a name whose node is gone: the next pass settles it
		}
		if j.entry(ref, path, e, n) {
			purgedIn = true
		}
	}
	for name, g := range want {
		path := "/" + filepath.Join(ref.P, name)
		if j.skip[g] || j.catalogBehind(path, gfid.GFID{}, false) {
			continue
		}
		j.differ("missing", path, g, "the slave has no such name")
		j.unsync = append(j.unsync, g)
	}
	if purgedIn && ref.G != gfid.Root {
		if n, ok, err := w.cat.Node(ref.G); err != nil {
			return err
		} else if ok {
			j.taint(n, "attr") // a purge changed its times on the slave
		}
	}
	return nil
}

// entry compares one name holding the catalog's gfid, n, and says whether
// it purges the name.
func (j *auditJudge) entry(ref auditDirRef, path string, e ops.AuditEntry, n catalog.Node) (purged bool) {
	w := j.w
	want := w.metaOp(n.GFID, crawl.Node{Node: n}) // the times and owner the slave was given
	ctype := ops.TypeOfMode(n.Mode)               // the catalog keeps the type bits in Mode
	recreate := func(kind, what string) bool {
		j.differ(kind, path, n.GFID, what)
		j.unsync = append(j.unsync, n.GFID)
		j.purges = append(j.purges, purge{ref.G, e.Name, n.GFID})
		return true
	}
	if e.Attr.Type != ctype {
		return recreate("type", fmt.Sprintf("a %s on the slave, a %s on the master", e.Attr.Type, ctype))
	}
	if e.Attr.Type == ops.TypeDir {
		j.subdirs = append(j.subdirs, auditDirRef{G: n.GFID, P: filepath.Join(ref.P, e.Name)})
	}
	if e.Attr.Type == ops.TypeSymlink && e.Attr.Target != n.Target {
		return recreate("target", fmt.Sprintf("points to %q on the slave, %q on the master", e.Attr.Target, n.Target))
	}
	if len(n.Links) > 1 && e.Attr.Type != ops.TypeDir {
		if ino, seen := w.audit.inos[n.GFID]; !seen {
			w.audit.inos[n.GFID] = e.Ino
		} else if ino != e.Ino {
			return recreate("hardlink", "this name is not the same inode as the gfid's other names on the slave")
		}
	}
	if e.Attr.Type != ops.TypeSymlink && e.Attr.Mode&0o7777 != want.Mode&0o7777 {
		j.differ("mode", path, n.GFID, fmt.Sprintf("mode %#o on the slave, %#o on the master", e.Attr.Mode&0o7777, want.Mode&0o7777))
		j.taint(n, "attr")
	}
	if j.owner && (e.Attr.UID != want.UID || e.Attr.GID != want.GID) {
		j.differ("owner", path, n.GFID, fmt.Sprintf("owner %d:%d on the slave, %d:%d on the master", e.Attr.UID, e.Attr.GID, want.UID, want.GID))
		j.taint(n, "attr")
	}
	dataDiffers := false
	if e.Attr.Type == ops.TypeRegular && int64(e.Attr.Size) != n.Size {
		j.differ("size", path, n.GFID, fmt.Sprintf("%d bytes on the slave, %d on the master", e.Attr.Size, n.Size))
		j.taint(n, "data")
		dataDiffers = true
	}
	if want.Mtime != nil && !e.Attr.Mtime.Equal(*want.Mtime) {
		j.differ("mtime", path, n.GFID, fmt.Sprintf("mtime %s on the slave, %s on the master",
			e.Attr.Mtime.UTC().Format(time.RFC3339Nano), want.Mtime.UTC().Format(time.RFC3339Nano)))
		if e.Attr.Type == ops.TypeRegular {
			j.taint(n, "data") // written behind georep's back, perhaps
			dataDiffers = true
		} else {
			j.taint(n, "attr")
		}
	}
	if w.cfg.SyncXattrs && (e.Attr.Type == ops.TypeRegular || e.Attr.Type == ops.TypeDir) && !bytes.Equal(e.XattrDigest, n.XattrHash) {
		j.differ("xattrs", path, n.GFID, "the user.* xattrs differ")
		j.taint(n, "xattrs")
	}
	if w.audit.round.Content && e.Attr.Type == ops.TypeRegular && !dataDiffers {
		j.content(path, e, n)
	}
	return false
}

// content compares a regular file's data with the slave's digest of it,
// when the source still holds what the catalog says was synced.
func (j *auditJudge) content(path string, e ops.AuditEntry, n catalog.Node) {
	if e.ContentErr != nil || len(e.ContentDigest) == 0 {
		return // changed on the slave while described, or unreadable: the next round looks again
	}
	src := filepath.Join(j.w.cfg.Source, path)
	d, size, ok := digestSource(src, n)
	if !ok {
		return // changed on the source since it was synced: the pass in the making ships it
	}
	j.files++
	j.bytes += size
	if !bytes.Equal(d, e.ContentDigest) {
		j.differ("content", path, n.GFID, "the data differs (xxh3-128 digests)")
		j.taint(n, "data")
	}
}

// digestSource digests the data of the source file at path, when it is
// still the catalog's n as synced (same inode type, size, mtime and ctime
// before and after reading).
func digestSource(path string, n catalog.Node) (digest []byte, size int64, ok bool) {
	same := func(st *unix.Stat_t) bool {
		return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == n.Size && st.Mtim.Nano() == n.MtimeNs && st.Ctim.Nano() == n.CtimeNs
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, 0, false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || !same(&st) {
		return nil, 0, false
	}
	d, size, err := ops.ContentDigest(f)
	if err != nil || unix.Fstat(fd, &st) != nil || !same(&st) {
		return nil, 0, false
	}
	return d, size, true
}

// repair purges what the step found extra (within the max-delete guard),
// forgets in the catalog what the slave lacks or holds wrongly, and marks
// what differs; the hybrid crawl that follows ships it all.
func (j *auditJudge) repair(ctx context.Context) error {
	w := j.w
	if err := w.guardDeletes("the audit", int64(len(j.purges)), -1); err != nil {
		return err
	}
	for _, p := range j.purges {
		if _, err := w.slave.Purge(ctx, p.dir, p.name, p.gfid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit: purging %q in %s: %w", p.name, p.dir, err)
		}
	}
	if len(j.unsync) > 0 {
		if _, err := w.cat.Unsync(j.unsync); err != nil {
			return err
		}
		for _, g := range j.unsync {
			delete(j.taints, g)
		}
	}
	if len(j.taints) > 0 {
		nodes := make([]catalog.Node, 0, len(j.taints))
		for _, n := range j.taints {
			nodes = append(nodes, *n)
		}
		if err := w.cat.Commit(nodes, nil); err != nil {
			return err
		}
	}
	return nil
}

// auditKinds are the kinds of difference, as status and metrics name them.
var auditKinds = []string{"missing", "extra", "gfid", "type", "mode", "owner", "size", "mtime", "target", "xattrs", "content", "hardlink", "unsynced"}

// auditKindsText lists them for help texts.
func auditKindsText() string { return strings.Join(auditKinds, ", ") }
