package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/glusterfs"
)

// runGluster runs the master of a GlusterFS volume on this node (gsyncd's
// monitor): one worker per local brick of the volume, each with its own
// work dir under <work-dir>/bricks/, sharing one session with the slave and
// one aux-gfid mount of the volume through which data is read. Of the
// local bricks of one replica set, one worker is Active at a time (it
// holds <work-dir>/active.<set>.lock); the others are Passive and take over
// when it stops.
func runGluster(ctx context.Context, cfg Config, wd *workDir, rsyncPath, self string, log *slog.Logger) error {
	vol, err := glusterfs.GetVolume(ctx, cfg.GlusterCLI, cfg.VolfileServer, cfg.GlusterVolume)
	if err != nil {
		return err
	}
	if err := vol.Servable(); err != nil {
		return err
	}
	node, err := glusterfs.LocalNodeUUID()
	if err != nil {
		return fmt.Errorf("gluster-volume %s: this node's glusterd identity: %w", vol.Name, err)
	}
	var bricks []glusterfs.Brick
	for _, b := range vol.LocalBricks(node) {
		if !b.Arbiter { // an arbiter holds names, not data: never Active
			bricks = append(bricks, b)
		}
	}
	if len(bricks) == 0 {
		return fmt.Errorf("gluster-volume %s has no brick on this node (glusterd uuid %s): run georep-master on the nodes that hold its bricks", vol.Name, node)
	}
	server := cfg.VolfileServer
	if server == "" {
		server = bricks[0].Host
	}
	if err := os.MkdirAll(wd.path("aux-mount"), 0o700); err != nil {
		return fmt.Errorf("work-dir: %w", err)
	}
	// As gsyncd: --client-pid=-1 marks our reads as geo-replication's.
	mnt, err := glusterfs.Mount(ctx, glusterfs.MountConfig{VolfileServer: server, Volume: vol.Name,
		Dir: wd.path("aux-mount"), AuxGFID: true, LogFile: wd.path("aux-mount.log"), ExtraArgs: []string{"--client-pid=-1"}})
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
		w.brick = &brickState{path: b.Path, volumeID: vol.ID, auxMount: mnt.Dir}
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
			run.Go(func() { w.activeWhenLocked(ctx, wd.path(fmt.Sprintf("active.%d.lock", set)), changelogOn) })
		}
	}
	run.Wait()
	return errors.Join(errs...)
}

// activeWhenLocked waits Passive until it holds the replica set's lock,
// then replicates its brick (Active) until ctx is done.
func (w *worker) activeWhenLocked(ctx context.Context, lockPath string, changelogOn bool) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		w.log.Error("replica set lock", "err", err)
		return
	}
	defer f.Close()
	w.stats.WorkerStatus = "Passive"
	_ = w.wd.saveStats(w.stats)
	for logged := false; ; logged = true {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			w.log.Error("replica set lock", "err", err)
			return
		}
		if !logged {
			w.log.Info("worker Passive: another brick of the replica set is Active")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	w.log.Info("worker Active")
	w.stats.WorkerStatus = "Active"
	_ = w.wd.saveStats(w.stats)
	run := w.brickLive
	if !changelogOn {
		run = w.daemon
	}
	if err := run(ctx); err != nil && ctx.Err() == nil {
		w.log.Error("worker stopped", "err", err)
	}
}

// brickDirName names a brick's work dir after its path.
func brickDirName(path string) string {
	return strings.ReplaceAll(strings.Trim(path, "/"), "/", "-")
}
