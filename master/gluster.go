package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/backoff"
)

// runGluster runs the master of a GlusterFS volume on this node (gsyncd's
// monitor): one worker per local brick of the volume, each with its own
// work dir under <work-dir>/bricks/, sharing one session with the slave and
// one aux-gfid mount of the volume through which data is read. Of the
// local bricks of one replica set, one worker is Active at a time (it
// holds <work-dir>/active.<set>.lock); the others are Passive and take over
// when it stops.
func runGluster(ctx context.Context, cfg Config, wd *workDir, mon *monitor, rsyncPath, self string, log *slog.Logger) error {
	vol, bricks, err := localBricks(ctx, cfg)
	if err != nil {
		return err
	}
	server := cfg.VolfileServer
	if server == "" {
		server = bricks[0].Host
	}
	if err := os.MkdirAll(wd.path("aux-mount"), 0o700); err != nil {
		return fmt.Errorf("work-dir: %w", err)
	}
	// As gsyncd: --client-pid=-1 marks our reads as geo-replication's. The
	// mount gives the volume's view of modes, owners and times; file data
	// is read on the bricks (the client's quick-read served the old
	// content of a file rewritten at the same size and mtime, and a cached
	// size made a swapped-in file read as empty). Nothing is cached.
	mnt, err := glusterfs.Mount(ctx, glusterfs.MountConfig{VolfileServer: server, Volume: vol.Name,
		Dir: wd.path("aux-mount"), AuxGFID: true, LogFile: wd.path("aux-mount.log"), ExtraArgs: []string{
			"--client-pid=-1", "--entry-timeout=0", "--attribute-timeout=0", "--negative-timeout=0",
			"--direct-io-mode=enable", "--xlator-option=*md-cache.md-cache-timeout=0",
		}})
	if err != nil {
		return fmt.Errorf("gluster-volume %s: aux-gfid mount: %w", vol.Name, err)
	}
	defer func() {
		if err := mnt.Close(); err != nil {
			log.Warn("unmounting the aux-gfid mount", "err", err)
		}
	}()
	client, err := newSlaveClient(cfg, vol.ID, wd.path("session"))
	if err != nil {
		return err
	}
	defer client.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { client.keepAliveLogged(ctx, log) })

	sets := map[int][]*worker{}
	var order []int
	for _, b := range bricks {
		bwd, err := openWorkDir(wd.path("bricks/" + brickDirName(b.Path)))
		if err != nil {
			return err
		}
		defer bwd.close()
		wcfg := cfg
		wcfg.Source, wcfg.GlusterVolume = b.Path, ""
		blog := log.With("brick", b.String())
		w, err := newWorker(wcfg, bwd, client, rsyncPath, self, blog)
		if err != nil {
			return err
		}
		defer w.close()
		w.brick = &brickState{name: b.String(), path: b.Path, volumeID: vol.ID, auxMount: mnt.Dir}
		mon.add(w, b.String())
		w.partial = len(vol.Bricks)/max(vol.ReplicaCount, 1) > 1
		wg.Go(func() { w.runSyncer(ctx) })
		if _, ok := sets[b.ReplicaSet]; !ok {
			order = append(order, b.ReplicaSet)
		}
		sets[b.ReplicaSet] = append(sets[b.ReplicaSet], w)
	}
	log.Info("master starting", "volume", vol.Name, "volume_id", vol.ID, "bricks", len(bricks), "replica_sets", len(order),
		"slave", cfg.Slave, "work_dir", cfg.WorkDir, "oneshot", cfg.Oneshot)

	changelogOn := vol.Options["changelog.changelog"] == "on"
	if !cfg.Oneshot && !changelogOn {
		log.Warn("the volume's changelog is off: falling back to a hybrid crawl of each brick every change-interval; "+
			"turn it on with 'gluster volume set "+vol.Name+" changelog.changelog on'", "change_interval", cfg.ChangeInterval)
	}
	errs := make([]error, 0, len(order))
	var mu sync.Mutex
	var run sync.WaitGroup
	for _, set := range order {
		ws := sets[set]
		if cfg.Oneshot {
			// One pass of one brick per replica set: they hold the same data.
			w := ws[0]
			run.Go(func() {
				if err := w.oneshot(ctx); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("brick %s: %w", w.brick.path, err))
					mu.Unlock()
				}
			})
			continue
		}
		for _, w := range ws {
			name := w.brick.name
			online := func(ctx context.Context) (bool, error) {
				st, err := glusterfs.GetVolumeStatus(ctx, cfg.GlusterCLI, cfg.VolfileServer, vol.Name)
				if err != nil {
					return false, err
				}
				return st[name].Online, nil
			}
			run.Go(func() { w.supervise(ctx, wd.path(fmt.Sprintf("active.%d.lock", set)), changelogOn, online) })
		}
	}
	run.Wait()
	return errors.Join(errs...)
}

// brickCheckEvery is how often an Active worker checks that its brick's
// process runs (a variable for tests).
var brickCheckEvery = 5 * time.Second

// supervise is gsyncd's monitor for one brick: the worker waits Passive
// until its brick is online and it holds the replica set's lock, then runs
// Active until ctx is done. It steps down (Faulty) when its brick goes
// offline, letting another brick of the set take over, and comes back
// Passive when the brick is online again; a worker that fails (an error or
// a panic) is Faulty and restarted with backoff.
func (w *worker) supervise(ctx context.Context, lockPath string, changelogOn bool, online func(context.Context) (bool, error)) {
	var src changeSource = w.brickSource()
	if !changelogOn {
		src = w.crawlSource()
	}
	run := func(ctx context.Context) error { return w.run(ctx, src) }
	bo := backoff.Backoff{Initial: time.Second, Max: time.Minute}
	for ctx.Err() == nil {
		lock, err := w.becomeActive(ctx, lockPath, online)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("worker cannot take the replica set's lock", "err", err)
			}
			return
		}
		w.setStatus("Active", "")
		w.log.Info("worker Active")
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- fmt.Errorf("worker panicked: %v\n%s", p, debug.Stack())
				}
			}()
			done <- run(runCtx)
		}()
		var why string
		tick := time.NewTicker(brickCheckEvery)
	watch:
		for {
			select {
			case err := <-done:
				if err != nil && ctx.Err() == nil {
					why = err.Error()
				}
				break watch
			case <-tick.C:
				up, err := online(ctx)
				if err != nil {
					w.log.Warn("cannot tell whether the brick is online; staying Active", "err", err)
					continue
				}
				if !up {
					why = "brick offline"
					stop()
					<-done
					break watch
				}
			}
		}
		tick.Stop()
		stop()
		lock.Close() // another brick of the set may take over
		if ctx.Err() != nil {
			return
		}
		w.setStatus("Faulty", why)
		w.log.Error("worker Faulty: stepping down; another brick of the replica set may take over", "reason", why, "restart_in", bo.Current())
		if !bo.Wait(ctx, nil) {
			return
		}
	}
}

// becomeActive waits, Passive, until the brick is online and the worker
// holds the replica set's lock, which it returns.
func (w *worker) becomeActive(ctx context.Context, lockPath string, online func(context.Context) (bool, error)) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for logged := ""; ; {
		why := ""
		if up, err := online(ctx); err == nil && !up {
			why = "brick offline"
		} else if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			return f, nil
		} else if errors.Is(err, unix.EWOULDBLOCK) {
			why = "another brick of the replica set is Active"
		} else {
			f.Close()
			return nil, err
		}
		if why != logged {
			w.setStatus("Passive", why)
			w.log.Info("worker Passive", "reason", why)
			logged = why
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// setStatus records the worker's state (Active, Passive, Faulty) and why.
func (w *worker) setStatus(state, why string) {
	w.stats.WorkerStatus = state
	if why != "" {
		w.stats.LastError = why
	}
	_ = w.wd.saveStats(w.stats)
}

// brickDirName names a brick's work dir after its path.
func brickDirName(path string) string {
	return strings.ReplaceAll(strings.Trim(path, "/"), "/", "-")
}

// dryRunGluster is the dry run of a GlusterFS master: the plan of the first
// local brick of each replica set (those a --oneshot would run).
func dryRunGluster(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	vol, bricks, err := localBricks(ctx, cfg)
	if err != nil {
		return err
	}
	client, err := dryRunClient(ctx, cfg, vol.ID)
	if err != nil {
		return err
	}
	defer client.Close()
	seen := map[int]bool{}
	for _, b := range bricks {
		if seen[b.ReplicaSet] {
			continue
		}
		seen[b.ReplicaSet] = true
		fmt.Fprintf(out, "== brick %s\n", b.String())
		bcfg := cfg
		bcfg.Source, bcfg.GlusterVolume = b.Path, ""
		bs := &brickState{name: b.String(), path: b.Path, volumeID: vol.ID}
		partial := len(vol.Bricks)/max(vol.ReplicaCount, 1) > 1
		if err := dryRunSource(ctx, bcfg, client, filepath.Join(cfg.WorkDir, "bricks", brickDirName(b.Path)), bs, partial, out, log.With("brick", b.String())); err != nil {
			return fmt.Errorf("brick %s: %w", b.Path, err)
		}
	}
	return nil
}

// localBricks asks glusterd for the volume and returns it with the bricks
// of this node that can be Active (not arbiters).
func localBricks(ctx context.Context, cfg Config) (*glusterfs.Volume, []glusterfs.Brick, error) {
	vol, err := glusterfs.GetVolume(ctx, cfg.GlusterCLI, cfg.VolfileServer, cfg.GlusterVolume)
	if err != nil {
		return nil, nil, err
	}
	if err := vol.Servable(); err != nil {
		return nil, nil, err
	}
	if vol.Options["features.shard"] == "on" {
		// A brick holds a sharded file's first shard only, and data is
		// read on the bricks.
		return nil, nil, fmt.Errorf("gluster-volume %s is sharded (features.shard on): georep reads file data on the bricks and cannot replicate sharded files", vol.Name)
	}
	node, err := glusterfs.LocalNodeUUID()
	if err != nil {
		return nil, nil, fmt.Errorf("gluster-volume %s: this node's glusterd identity: %w", vol.Name, err)
	}
	var bricks []glusterfs.Brick
	for _, b := range vol.LocalBricks(node) {
		if !b.Arbiter { // an arbiter holds names, not data: never Active
			bricks = append(bricks, b)
		}
	}
	if len(bricks) == 0 {
		return nil, nil, fmt.Errorf("gluster-volume %s has no brick on this node (glusterd uuid %s): run georep-master on the nodes that hold its bricks", vol.Name, node)
	}
	return vol, bricks, nil
}
