package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/tail"
)

// stderrTail is how much of rsync's stderr a failed run reports.
const stderrTail = 4 << 10

// RsyncError is the failure of every item of an rsync run that exited with a
// non-zero code. The caller retries the items (a run is all or nothing: which
// of its files made it is not known).
type RsyncError struct {
	// Code is rsync's exit code (23: some files failed, 24: some vanished).
	Code int
	// Stderr is the tail of rsync's standard error.
	Stderr string
}

// Error reports the code and the last lines of stderr (rsync's summary and
// the error before it).
func (e *RsyncError) Error() string {
	lines := strings.Split(strings.TrimSpace(e.Stderr), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return fmt.Sprintf("rsync exited with code %d: %s", e.Code, strings.Join(lines, "; "))
}

// job is one rsync run: the items it ships and the directory it stages them in.
type job struct {
	dir     string              // StageDir/job-N-seq
	byID    map[gfid.GFID]Item  // unique items to ship
	fails   map[gfid.GFID]error // items that failed before rsync ran
	shipped []gfid.GFID         // staged items, in list order
	bytes   int64               // their sizes at staging time
	ran     bool                // rsync was started
}

// rsyncOptions returns the rsync options for cfg, before source and destination.
//
//   - --copy-links: the stage holds symlinks; send what they point to.
//   - --relative, --files-from=- --from0, --no-implied-dirs: the list on
//     stdin names ab/<gfid>, which lands in the slave's data directory
//     under the same name; ab and cd exist there already.
//   - --inplace: write into the inode every hardlink of the gfid shares.
//   - --ignore-times: a recorded data change ships even when size and mtime
//     did not change; the delta algorithm still keeps the wire small.
//   - --existing: never create an inode the entry ops did not create.
//   - --numeric-ids, -p -t -o -g: mode, mtime and ownership as numbers.
//   - --sparse (for files with holes only), when this rsync allows it with
//     --inplace (3.1.3 on).
//   - --acls with SyncACLs. Never --xattrs: see Config.SyncXattrs.
//
// No -r (the list names files), no -l or -D (only regular file data ships,
// and the slave refuses them).
func rsyncOptions(cfg Config, sparse bool) []string {
	o := []string{
		"-e", shellJoin(cfg.Tunnel),
		"--copy-links", "--relative", "--files-from=-", "--from0", "--no-implied-dirs",
		"--inplace", "--ignore-times", "--existing", "--numeric-ids",
		"--perms", "--times", "--owner", "--group",
	}
	if sparse {
		o = append(o, "--sparse")
	}
	if cfg.SyncACLs {
		o = append(o, "--acls")
	}
	return append(o, cfg.RsyncOptions...)
}

var rsyncVersion = regexp.MustCompile(`version\s+v?(\d+)\.(\d+)\.(\d+)`)

// sparseWithInplace reports whether the rsync at bin accepts --sparse with
// --inplace, which it does from 3.1.3 on.
func sparseWithInplace(bin string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return false
	}
	m := rsyncVersion.FindSubmatch(out)
	if m == nil {
		return false
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(string(m[i+1]))
	}
	return v[0] > 3 || v[0] == 3 && (v[1] > 1 || v[1] == 1 && v[2] >= 3)
}

// stage creates j.dir with a symlink ab/<gfid> → source for every item
// and returns the NUL-separated lists of those names: files without holes,
// and sparse files (fewer blocks than their size needs), which ship with
// --sparse. An item whose source is gone or not a regular file fails on its
// own (the error matches fs.ErrNotExist when it is gone) and is left out of
// the run.
func (j *job) stage() (dense, sparse []byte, err error) {
	if err := os.Mkdir(j.dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("stage: %w", err)
	}
	var lists [2]bytes.Buffer
	made := make(map[string]bool)
	for id, it := range j.byID {
		fi, err := os.Stat(it.Path)
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file (%s)", it.Path, fi.Mode().Type())
		}
		if err != nil {
			j.fails[id] = fmt.Errorf("stage %s: %w", id, err)
			continue
		}
		rel := id.Shard()
		if !made[rel] {
			if err := os.Mkdir(filepath.Join(j.dir, rel), 0o700); err != nil {
				return nil, nil, fmt.Errorf("stage: %w", err)
			}
			made[rel] = true
		}
		name := rel + "/" + id.String()
		if err := os.Symlink(it.Path, filepath.Join(j.dir, name)); err != nil {
			return nil, nil, fmt.Errorf("stage: %w", err)
		}
		list := &lists[0]
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < st.Size {
			list = &lists[1]
		}
		list.WriteString(name)
		list.WriteByte(0)
		j.shipped = append(j.shipped, id)
		j.bytes += fi.Size()
	}
	return lists[0].Bytes(), lists[1].Bytes(), nil
}

// rsyncJob stages j, runs rsync over the tunnel for it (a second run for
// its sparse files) and removes the stage.
func (s *Syncer) rsyncJob(ctx context.Context, j *job) (err error) {
	defer func() {
		if rerr := os.RemoveAll(j.dir); rerr != nil {
			s.log.Warn("cannot remove stage", "stage", j.dir, "err", rerr)
		}
	}()
	dense, sparse, err := j.stage()
	if err != nil {
		return err
	}
	sparseOptions := s.sparseOptions
	if sparseOptions == nil {
		dense, sparse, sparseOptions = append(dense, sparse...), nil, s.options
	}
	if len(dense) > 0 {
		if err := s.runRsync(ctx, j, s.options, dense); err != nil {
			return err
		}
	}
	if len(sparse) > 0 {
		return s.runRsync(ctx, j, sparseOptions, sparse)
	}
	return nil
}

// runRsync runs rsync with options for the files named in list.
func (s *Syncer) runRsync(ctx context.Context, j *job, options []string, list []byte) error {
	args := append(append([]string(nil), options...), j.dir+"/.", "georep:.")
	cmd := exec.CommandContext(ctx, s.rsync, args...)
	cmd.Stdin = bytes.NewReader(list)
	stderr := &tail.Buffer{Max: stderrTail}
	cmd.Stdout = stderr // quiet unless the user asked for -v; keep it with stderr
	cmd.Stderr = stderr
	// rsync forks its remote shell; kill the whole group on cancel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	j.ran = true
	err := cmd.Run()
	s.log.Debug("rsync run", "files", bytes.Count(list, []byte{0}), "duration", time.Since(start), "err", err)
	if s.cfg.OnRun != nil {
		s.cfg.OnRun(time.Since(start), err)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("rsync: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return &RsyncError{Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	return fmt.Errorf("rsync: %w: %s", err, strings.TrimSpace(stderr.String()))
}

// shellJoin joins argv into one -e string that rsync splits back into the
// same arguments. rsync splits on spaces only; single and double quotes
// group, and inside quotes a doubled quote character is a literal one. There
// is no backslash escaping.
func shellJoin(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " '\"") {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", "''"))
		b.WriteByte('\'')
	}
	return b.String()
}
