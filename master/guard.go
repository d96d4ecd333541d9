package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
)

// ErrGuard marks a pass that a safety guard refused: nothing of it was
// applied. georep-master --oneshot exits 4 on it; a daemon's worker is
// Faulty with the guard's reason until the operator proceeds.
var ErrGuard = errors.New("a safety guard refused")

// The guards' names, as errors, status and metrics show them.
const (
	guardSourceIdentity  = "source-identity"
	guardEmptySource     = "empty-source"
	guardMaxDelete       = "max-delete"
	guardReplicaNotEmpty = "replica-not-empty"
)

// GuardError is a refusal by one of the safety guards: which guard, what it
// measured, and how the operator proceeds.
type GuardError struct {
	Guard   string // the guard's name: source-identity, empty-source, max-delete, replica-not-empty
	Detail  string // what it found, with the figures
	Proceed string // what the operator does to proceed
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("safety guard %s refused the pass, nothing applied: %s; to proceed: %s", e.Guard, e.Detail, e.Proceed)
}

func (e *GuardError) Is(target error) bool { return target == ErrGuard }

// DeleteLimit is max-delete: how many deletes one pass may apply. A pass
// whose deletes exceed it applies nothing.
type DeleteLimit struct {
	Off     bool
	Percent float64 // of the entries on the replica, when > 0
	Count   int64   // an absolute number, when Percent is 0
}

// minPercentDeletes is the fewest deletes a percentage limit refuses: a
// pass deleting fewer is never refused by a percentage (a small tree would
// otherwise halt on every rm -r). A count limit has no floor.
const minPercentDeletes = 100

// DefaultDeleteLimit is max-delete's default: 50% of the replica's entries.
var DefaultDeleteLimit = DeleteLimit{Percent: 50}

// ParseDeleteLimit reads max-delete: "50%", "1000" or "off".
func ParseDeleteLimit(s string) (DeleteLimit, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "off":
		return DeleteLimit{Off: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || p <= 0 || p > 100 {
			return DeleteLimit{}, fmt.Errorf("max-delete: %q is not a percentage in (0,100]%%", s)
		}
		return DeleteLimit{Percent: p}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return DeleteLimit{}, fmt.Errorf("max-delete: %q is not a percentage (50%%), a count (1000) or off", s)
	}
	return DeleteLimit{Count: n}, nil
}

func (l DeleteLimit) String() string {
	switch {
	case l.Off:
		return "off"
	case l.Percent > 0:
		return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(l.Count, 10)
}

// check refuses deletes out of total entries on the replica, naming what
// deleted them (a pass, verify).
func (l DeleteLimit) check(what string, deletes, total int64) error {
	if l.Off || deletes == 0 {
		return nil
	}
	var limit int64
	if l.Percent > 0 {
		if deletes < minPercentDeletes {
			return nil
		}
		limit = int64(l.Percent / 100 * float64(total))
	} else {
		limit = l.Count
	}
	if deletes <= limit {
		return nil
	}
	detail := fmt.Sprintf("%s would delete %d entries on the slave, more than max-delete %s", what, deletes, l)
	if l.Percent > 0 {
		detail += fmt.Sprintf(" of the %d entries it holds (%d)", total, limit)
	}
	return &GuardError{Guard: guardMaxDelete, Detail: detail,
		Proceed: "check the source; if the deletes are meant, raise the limit for one pass: 'georepctl config set max-delete off' on a running master, or --max-delete off (or a count) on the next run"}
}

// sourceIdentity is what a worker replicates, recorded at its first pass in
// <work-dir>/source-identity and checked before every pass: an unmounted
// filesystem, a restored copy or another directory at the same path must
// not be taken for the source that lost everything.
type sourceIdentity struct {
	Path string `json:"path"`
	// FSID is the filesystem's id (statfs f_fsid: derived from the UUID on
	// ext4, XFS and btrfs).
	FSID string `json:"fsid"`
	// RootIno and RootBirth identify the source root's inode (birth time in
	// ns, 0 where the filesystem has none).
	RootIno   uint64 `json:"root_ino"`
	RootBirth int64  `json:"root_birth_ns"`
	// A brick also has its volume's id and the brick's own
	// trusted.glusterfs.volume-id.
	VolumeID      string    `json:"volume_id,omitempty"`
	BrickVolumeID string    `json:"brick_volume_id,omitempty"`
	Recorded      time.Time `json:"recorded"`
}

// readSourceIdentity reads the identity of the worker's source as it is now.
func (w *worker) readSourceIdentity() (sourceIdentity, error) {
	id := sourceIdentity{Path: w.cfg.Source}
	var sfs unix.Statfs_t
	if err := unix.Statfs(w.cfg.Source, &sfs); err != nil {
		return id, fmt.Errorf("source %s: %w", w.cfg.Source, err)
	}
	id.FSID = fmt.Sprintf("%08x%08x", uint32(sfs.Fsid.Val[0]), uint32(sfs.Fsid.Val[1]))
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, w.cfg.Source, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return id, fmt.Errorf("source %s: %w", w.cfg.Source, err)
	}
	id.RootIno = stx.Ino
	if stx.Mask&unix.STATX_BTIME != 0 {
		id.RootBirth = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	if b := w.brick; b != nil {
		id.VolumeID = b.volumeID
		raw, err := glusterfs.BrickVolumeID(b.path)
		if err != nil {
			return id, err
		}
		id.BrickVolumeID = raw
	}
	return id, nil
}

// differs says how now differs from the recorded identity, "" when not.
func (rec sourceIdentity) differs(now sourceIdentity) string {
	var d []string
	if rec.FSID != now.FSID {
		d = append(d, fmt.Sprintf("filesystem id %s, recorded %s", now.FSID, rec.FSID))
	}
	if rec.RootIno != now.RootIno || rec.RootBirth != now.RootBirth {
		d = append(d, fmt.Sprintf("root inode %d born %s, recorded %d born %s", now.RootIno, birth(now.RootBirth), rec.RootIno, birth(rec.RootBirth)))
	}
	if rec.VolumeID != now.VolumeID {
		d = append(d, fmt.Sprintf("volume id %s, recorded %s", now.VolumeID, rec.VolumeID))
	}
	if rec.BrickVolumeID != now.BrickVolumeID {
		got := now.BrickVolumeID
		if got == "" {
			got = "none"
		}
		d = append(d, fmt.Sprintf("brick trusted.glusterfs.volume-id %s, recorded %s", got, rec.BrickVolumeID))
	}
	return strings.Join(d, "; ")
}

func birth(ns int64) string {
	if ns == 0 {
		return "unknown"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

const proceedNewSource = "check that the source is mounted and is the tree to replicate; if it is, run once with --accept-new-source (accept-new-source in the config file or GEOREP_ACCEPT_NEW_SOURCE)"

// guardSource checks, before a pass, that the source is the one the work dir
// records (recording it at the first pass) and that it is not empty while
// the catalog knows entries. --accept-new-source lifts both once per run,
// and the acceptance is recorded.
func (w *worker) guardSource() error {
	now, err := w.readSourceIdentity()
	if err != nil {
		return err
	}
	recPath := w.wd.path("source-identity")
	var rec sourceIdentity
	var b []byte
	if w.srcID != nil {
		rec = *w.srcID
	} else {
		b, err = os.ReadFile(recPath)
	}
	switch {
	case w.srcID != nil:
	case errors.Is(err, fs.ErrNotExist):
		now.Recorded = time.Now().UTC()
		if err := writeJSON(recPath, now); err != nil {
			return fmt.Errorf("recording the source's identity: %w", err)
		}
		w.log.Info("recorded the source's identity; every pass checks it", "fsid", now.FSID, "root_ino", now.RootIno,
			"volume_id", now.VolumeID, "brick_volume_id", now.BrickVolumeID)
		rec = now
	case err != nil:
		return fmt.Errorf("source identity: %w", err)
	default:
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("source identity %s: %w (a corrupt record refuses every pass: move it away to record the source again)", recPath, err)
		}
	}
	w.srcID = &rec
	why := rec.differs(now)
	guard := guardSourceIdentity
	detail := fmt.Sprintf("the source %s is not the one recorded on %s: %s", w.cfg.Source, rec.Recorded.Format(time.RFC3339), why)
	if why == "" {
		empty, err := w.sourceEmpty()
		if err != nil || !empty {
			return err
		}
		guard = guardEmptySource
		detail = fmt.Sprintf("the source %s is empty while the slave holds what it had (an unmounted filesystem looks like this)", w.cfg.Source)
	}
	if !w.acceptSource {
		return &GuardError{Guard: guard, Detail: detail, Proceed: proceedNewSource}
	}
	w.acceptSource = false // once per run: the flag must not disarm the guard for good
	now.Recorded = time.Now().UTC()
	if err := writeJSON(recPath, now); err != nil {
		return fmt.Errorf("recording the source's identity: %w", err)
	}
	w.srcID = &now
	w.recordAction("accept-new-source", detail)
	return nil
}

// sourceEmpty says whether the source root holds nothing while the catalog
// has synced entries below it.
func (w *worker) sourceEmpty() (bool, error) {
	d, err := os.Open(w.cfg.Source)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", w.cfg.Source, err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(64)
		for _, n := range names {
			if w.brick != nil && glusterfs.BrickInternal(n) {
				continue
			}
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			kids, err := w.cat.Children(gfid.Root)
			return len(kids) > 0, err
		}
		if err != nil {
			return false, fmt.Errorf("source %s: %w", w.cfg.Source, err)
		}
	}
}

// recordAction appends an operator's decision that lifted a guard to
// <work-dir>/guard.log and to the log.
func (w *worker) recordAction(action, detail string) {
	w.log.Warn("safety guard lifted by the operator", "action", action, "detail", detail)
	line, _ := json.Marshal(struct {
		Time   time.Time `json:"time"`
		Action string    `json:"action"`
		Detail string    `json:"detail"`
		User   int       `json:"uid"`
	}{time.Now().UTC(), action, detail, os.Getuid()})
	f, err := os.OpenFile(w.wd.path("guard.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.log.Error("recording the operator's action in guard.log", "err", err)
	}
}

// deleteLimit is max-delete, as last set through the status service.
func (w *worker) deleteLimit() DeleteLimit {
	if w.mon != nil {
		return w.mon.deleteLimit()
	}
	return w.cfg.MaxDelete
}

// guardDeletes refuses a pass whose deletes exceed max-delete, out of total
// entries on the replica (<0: as many as the catalog says it holds).
func (w *worker) guardDeletes(what string, deletes, total int64) error {
	l := w.deleteLimit()
	if l.Off || deletes == 0 || (l.Percent > 0 && deletes < minPercentDeletes) || (l.Percent == 0 && deletes <= l.Count) {
		return nil
	}
	if total < 0 {
		var err error
		if total, err = w.cat.Count(); err != nil {
			return err
		}
	}
	return l.check(what, deletes, total)
}
