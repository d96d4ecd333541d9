package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
)

// dryRunShow is how many names of each kind the plan lists.
const dryRunShow = 10

// plan is what one pass would do, grouped by kind.
type plan struct {
	kinds map[string][]string // kind → names (paths relative to the source)
	count map[string]int
}

func (p *plan) add(kind, name string) {
	p.count[kind]++
	if len(p.kinds[kind]) < dryRunShow {
		p.kinds[kind] = append(p.kinds[kind], name)
	}
}

// planKinds is the order the plan is printed in.
var planKinds = []string{"create", "link", "rename", "delete", "data", "meta", "slave-extra", "slave-missing"}

var planTitles = map[string]string{
	"create": "creates", "link": "hardlinks", "rename": "renames", "delete": "deletes",
	"data": "data (files shipped)", "meta": "meta (attributes set)",
	"slave-extra":   "on the slave, not put there by georep (verify would purge)",
	"slave-missing": "missing on the slave (verify would recreate)",
}

// dryRun is --oneshot --dry-run: for a plain directory, or for each
// replica set's first local brick of a GlusterFS volume, crawl the source
// against a copy of the catalog, list the slave's directories, and print
// the plan to out. Nothing changes on either side: no work dir is created,
// the catalog and stime are not written, no session is opened on the slave.
func dryRun(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	if cfg.GlusterVolume != "" {
		return dryRunGluster(ctx, cfg, out, log)
	}
	volumeID := "dry-run"
	if b, err := os.ReadFile(filepath.Join(cfg.WorkDir, "volume-id")); err == nil {
		volumeID = strings.TrimSpace(string(b))
	}
	client, err := dryRunClient(ctx, cfg, volumeID)
	if err != nil {
		return err
	}
	defer client.Close()
	return dryRunSource(ctx, cfg, client, cfg.WorkDir, nil, false, out, log)
}

// dryRunClient connects to the slave without opening a session.
func dryRunClient(ctx context.Context, cfg Config, volumeID string) (*slaveClient, error) {
	client, err := newSlaveClient(cfg, volumeID, filepath.Join(os.TempDir(), "georep-dry-run-no-session"), "", nil, nil)
	if err != nil {
		return nil, err
	}
	var errs []error
	for range client.eps {
		ep := client.current()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = rpc.WaitHealthy(hctx, ep.conn, "")
		cancel()
		if err == nil {
			return client, nil
		}
		errs = append(errs, fmt.Errorf("slave %s unreachable: %w", ep.addr, err))
		client.next()
	}
	client.Close()
	return nil, errors.Join(errs...)
}

// dryRunSource prints the plan of one source (cfg.Source: a directory, or
// the brick b) whose state is in the work dir dir.
func dryRunSource(ctx context.Context, cfg Config, client *slaveClient, dir string, b *brickState, partial bool, out io.Writer, log *slog.Logger) error {
	tmp, err := os.MkdirTemp("", "georep-dry-run-*")
	if err != nil {
		return fmt.Errorf("dry-run: %w", err)
	}
	defer os.RemoveAll(tmp)
	wd, err := dryRunWorkDir(dir, tmp)
	if err != nil {
		return err
	}
	defer wd.close()
	cat, err := catalog.Open(filepath.Join(tmp, "catalog.db"))
	if err != nil {
		return err
	}
	defer cat.Close()
	w := &worker{cfg: cfg, log: log, wd: &workDir{dir: dir}, cat: cat, client: client, slave: client, brick: b, partial: partial}
	guards := w.dryRunSourceGuards()
	res, err := crawl.Hybrid(ctx, crawl.Config{Source: cfg.Source, ChangelogDir: tmp, IgnoreDeletes: cfg.IgnoreDeletes,
		SyncXattrs: cfg.SyncXattrs, Brick: b != nil}, cat, log)
	if err != nil {
		return fmt.Errorf("hybrid crawl: %w", err)
	}
	p := &plan{kinds: map[string][]string{}, count: map[string]int{}}
	p.fromRecords(res.Records, res.Snapshot, cat, cfg.Source)
	listed, err := w.dryRunCompare(ctx, res.Snapshot, p)
	if err != nil {
		return err
	}
	total, err := cat.Count()
	if err != nil {
		return err
	}
	limit := cfg.MaxDelete
	if err := limit.check("the pass", res.Stats.Deletes, total); err != nil {
		guards = append(guards, err.Error())
	}
	if err := limit.check("verify", int64(p.count["slave-extra"]), listed); err != nil {
		guards = append(guards, err.Error())
	}
	p.print(out, cfg, guards)
	return nil
}

// dryRunWorkDir takes the work dir's lock when it exists (a master running
// on it would change what the plan says) and copies its catalog into tmp.
// It creates nothing in the work dir.
func dryRunWorkDir(dir, tmp string) (*workDir, error) {
	wd := &workDir{dir: dir}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return wd, nil // a first run: nothing synced yet
	case err != nil:
		return nil, fmt.Errorf("work-dir lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("work-dir %s is in use by a running georep-master: its plan changes as it runs (ask it with georepctl status): %w", dir, err)
	}
	wd.lock = lock
	err = catalog.Copy(filepath.Join(dir, "catalog.db"), filepath.Join(tmp, "catalog.db"))
	if errors.Is(err, fs.ErrNotExist) {
		return wd, nil
	}
	if err != nil {
		wd.close()
		return nil, fmt.Errorf("dry-run: copying the catalog: %w", err)
	}
	return wd, nil
}

// dryRunSourceGuards says which source guards a pass would trip, without
// recording anything.
func (w *worker) dryRunSourceGuards() []string {
	now, err := w.readSourceIdentity()
	if err != nil {
		return []string{err.Error()}
	}
	b, err := os.ReadFile(w.wd.path("source-identity"))
	if err != nil {
		return nil // a first pass records it
	}
	var rec sourceIdentity
	if err := json.Unmarshal(b, &rec); err != nil {
		return []string{fmt.Sprintf("source identity: %v", err)}
	}
	if why := rec.differs(now); why != "" {
		return []string{(&GuardError{Guard: guardSourceIdentity, Detail: why, Proceed: proceedNewSource}).Error()}
	}
	if empty, err := w.sourceEmpty(); err == nil && empty {
		return []string{(&GuardError{Guard: guardEmptySource, Detail: "the source is empty while the slave holds what it had", Proceed: proceedNewSource}).Error()}
	}
	return nil
}

// fromRecords groups a crawl's records. A renamed gfid goes to the park and
// from there to its new name: it is one rename, old name → new name.
func (p *plan) fromRecords(recs []changelog.Record, snap *crawl.Snapshot, cat *catalog.Catalog, source string) {
	at := func(parent gfid.GFID, name string) string {
		if _, ok := snap.Path(parent); ok {
			return filepath.Join(rel(source, snap, parent), name)
		}
		return filepath.Join(oldPath(cat, parent), name)
	}
	from := map[gfid.GFID]string{}
	for _, r := range recs {
		switch {
		case r.Kind == changelog.Data:
			p.add("data", rel(source, snap, r.GFID))
		case r.Kind == changelog.Meta:
			p.add("meta", rel(source, snap, r.GFID))
		case r.Fop == changelog.Rename && r.NewParent == gfid.Park:
			from[r.GFID] = filepath.Join(oldPath(cat, r.Parent), r.Name)
		case r.Fop == changelog.Rename && r.Parent == gfid.Park:
			p.add("rename", from[r.GFID]+" → "+at(r.NewParent, r.NewName))
		case r.Fop == changelog.Rename:
			p.add("rename", filepath.Join(oldPath(cat, r.Parent), r.Name)+" → "+at(r.NewParent, r.NewName))
		case r.Fop == changelog.Unlink, r.Fop == changelog.Rmdir:
			p.add("delete", filepath.Join(oldPath(cat, r.Parent), r.Name))
		case r.Fop == changelog.Link:
			p.add("link", at(r.Parent, r.Name))
		case r.Fop.IsEntry():
			p.add("create", at(r.Parent, r.Name))
		}
	}
}

// oldPath is directory g's path as the catalog last synced it ("." for
// the root).
func oldPath(cat *catalog.Catalog, g gfid.GFID) string {
	var parts []string
	for g != gfid.Root && len(parts) < 4096 {
		n, ok, err := cat.Node(g)
		if err != nil || !ok || len(n.Links) == 0 {
			parts = append(parts, "<"+g.String()+">")
			break
		}
		parts = append(parts, n.Links[0].Name)
		g = n.Links[0].Parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return filepath.Join(append([]string{"."}, parts...)...)
}

// dryRunCompare lists on the slave every directory of the source that the
// catalog says the slave holds, and compares each listing with what the
// catalog says is there, changing nothing: what differs was changed on the
// slave behind georep's back, and verify would repair it after the pass.
// It returns how many entries those listings held.
func (w *worker) dryRunCompare(ctx context.Context, snap *crawl.Snapshot, p *plan) (int64, error) {
	source, _ := snap.Path(gfid.Root)
	var listed int64
	for _, dir := range snap.GFIDs() {
		if n, ok := snap.Lookup(dir); !ok || n.Type != catalog.TypeDir {
			continue
		}
		if _, synced, err := w.cat.Node(dir); err != nil || (!synced && dir != gfid.Root) {
			continue // not on the slave yet: the plan creates it
		}
		want, err := w.cat.Children(dir)
		if err != nil {
			return listed, err
		}
		ents, err := w.slave.Entries(ctx, dir)
		if slaveDirGone(err) {
			p.add("slave-missing", rel(source, snap, dir)+"/")
			continue
		}
		if err != nil {
			return listed, err
		}
		listed += int64(len(ents))
		have := make(map[string]bool, len(ents))
		for _, e := range ents {
			name := e.Name
			have[name] = true
			switch g, mine := want[name]; {
			case mine && e.GFID == g:
			case mine:
				p.add("slave-extra", filepath.Join(rel(source, snap, dir), name)+" (holds another inode)")
			case !w.cfg.IgnoreDeletes && !w.partial: // a brick of several holds part of the names
				p.add("slave-extra", filepath.Join(rel(source, snap, dir), name))
			}
		}
		for name := range want {
			if !have[name] {
				p.add("slave-missing", filepath.Join(rel(source, snap, dir), name))
			}
		}
	}
	return listed, nil
}

func rel(source string, snap *crawl.Snapshot, g gfid.GFID) string {
	if a, ok := snap.Path(g); ok {
		if r, err := filepath.Rel(source, a); err == nil {
			return r
		}
	}
	return g.String()
}

// print writes the plan: the guards that would refuse, then each kind with
// its count and first names.
func (p *plan) print(out io.Writer, cfg Config, guards []string) {
	fmt.Fprintf(out, "dry run: %s → %s; nothing was changed on either side\n", cfg.Source, cfg.Slave)
	if len(guards) == 0 {
		fmt.Fprintf(out, "safety guards: none would refuse (max-delete %s)\n", cfg.MaxDelete)
	}
	for _, g := range guards {
		fmt.Fprintf(out, "WOULD REFUSE: %s\n", g)
	}
	for _, k := range planKinds {
		fmt.Fprintf(out, "%-60s %d\n", planTitles[k], p.count[k])
		for _, n := range p.kinds[k] {
			fmt.Fprintf(out, "    %q\n", n)
		}
		if extra := p.count[k] - len(p.kinds[k]); extra > 0 {
			fmt.Fprintf(out, "    … and %d more\n", extra)
		}
	}
}
