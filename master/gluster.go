package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/georep/georep/master/glusterfs"
)

// runGluster runs the master of a GlusterFS volume on this node (gsyncd's
// monitor): one worker per local brick of the volume, each with its own
// work dir under <work-dir>/bricks/, sharing one session with the slave and
// one aux-gfid mount of the volume through which data is read. Of the
// bricks of one replica set, on every node, one worker is Active at a
// time: the one whose session holds the set's lease on the slave volume
// (slave/lease); the others are Passive and take over when it lets go.
func runGluster(ctx context.Context, cfg Config, wd *workDir, mon *monitor, rsyncPath, self string, log *slog.Logger) error {
	vol, bricks, err := localBricks(ctx, cfg)
	if err != nil {
		return err
	}
	limitMemory(len(bricks))
	mnt, err := mountAux(ctx, cfg, wd, vol, bricks)
	if err != nil {
		return err
	}
	defer func() {
		if err := mnt.Close(); err != nil {
			log.Warn("unmounting the aux-gfid mount", "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	g := &glusterRun{cfg: cfg, wd: wd, mon: mon, vol: vol, mnt: mnt, log: log, sets: map[int][]*worker{}}
	defer g.close()
	for _, b := range bricks {
		w, err := g.addWorker(b, rsyncPath, self)
		if err != nil {
			return err
		}
		wg.Go(func() { w.client.keepAliveLogged(ctx, w.log) })
		wg.Go(func() { w.runSyncer(ctx) })
	}
	log.Info("master starting", "volume", vol.Name, "volume_id", vol.ID, "bricks", len(bricks), "replica_sets", len(g.order),
		"slave", cfg.Slave, "work_dir", cfg.WorkDir, "oneshot", cfg.Oneshot)
	if cfg.Oneshot {
		return g.oneshot(ctx)
	}
	g.supervise(ctx)
	return nil
}

// mountAux mounts the volume with aux-gfid access under the work dir.
func mountAux(ctx context.Context, cfg Config, wd *workDir, vol *glusterfs.Volume, bricks []glusterfs.Brick) (*glusterfs.Mounted, error) {
	server := cfg.VolfileServer
	if server == "" {
		server = bricks[0].Host
	}
	if err := os.MkdirAll(wd.path("aux-mount"), 0o700); err != nil {
		return nil, fmt.Errorf("work-dir: %w", err)
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
		return nil, fmt.Errorf("gluster-volume %s: aux-gfid mount: %w", vol.Name, err)
	}
	return mnt, nil
}

// glusterRun is the master of a GlusterFS volume: its brick workers by
// replica set.
type glusterRun struct {
	cfg    Config
	wd     *workDir
	mon    *monitor
	vol    *glusterfs.Volume
	mnt    *glusterfs.Mounted
	log    *slog.Logger
	sets   map[int][]*worker
	order  []int    // the replica sets, in the volume's order
	closes []func() // what addWorker opened
}

// addWorker sets up the worker of brick b on its work dir, with its own
// session with the slave (sessions belong to workers: the slave grants
// one per replica set, across every master node), on the slave endpoint
// the brick's index prefers.
func (g *glusterRun) addWorker(b glusterfs.Brick, rsyncPath, self string) (*worker, error) {
	bwd, err := openWorkDir(g.wd.path("bricks/" + brickDirName(b.Path)))
	if err != nil {
		return nil, err
	}
	g.closes = append(g.closes, func() { bwd.close() })
	// The relay's socket sits in the node's work dir under a short name: a
	// socket path is limited to 108 bytes, and brick paths are long.
	client, err := newSlaveClientFor(g.cfg, g.vol.ID, bwd.path("session"), g.wd.path(fmt.Sprintf("tunnel.%d.sock", b.Index)), g.mon.bw, g.mon.metrics, b.Index)
	if err != nil {
		return nil, err
	}
	g.closes = append(g.closes, func() { client.Close() })
	client.replicaSet = strconv.Itoa(b.ReplicaSet)
	client.workerID = b.HostUUID + ":" + b.Path
	wcfg := g.cfg
	wcfg.Source, wcfg.GlusterVolume = b.Path, ""
	w, err := newWorker(wcfg, bwd, client, rsyncPath, self, g.log.With("brick", b.String()))
	if err != nil {
		return nil, err
	}
	g.closes = append(g.closes, w.close)
	w.brick = &brickState{name: b.String(), path: b.Path, volumeID: g.vol.ID, auxMount: g.mnt.Dir}
	g.mon.add(w, b.String())
	w.partial = len(g.vol.Bricks)/max(g.vol.ReplicaCount, 1) > 1
	if _, ok := g.sets[b.ReplicaSet]; !ok {
		g.order = append(g.order, b.ReplicaSet)
	}
	g.sets[b.ReplicaSet] = append(g.sets[b.ReplicaSet], w)
	return w, nil
}

// close releases what addWorker opened, last first.
func (g *glusterRun) close() {
	for i := len(g.closes) - 1; i >= 0; i-- {
		g.closes[i]()
	}
}

// oneshot runs one brick per replica set to convergence: they hold the
// same data.
func (g *glusterRun) oneshot(ctx context.Context) error {
	errs := make([]error, 0, len(g.order))
	var mu sync.Mutex
	var run sync.WaitGroup
	for _, set := range g.order {
		w := g.sets[set][0]
		run.Go(func() {
			if err := w.oneshot(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("brick %s: %w", w.brick.path, err))
				mu.Unlock()
			}
		})
	}
	run.Wait()
	return errors.Join(errs...)
}

// supervise runs every brick worker under supervise until ctx is done:
// the brick changelogs as its change source, or a periodic crawl when the
// volume's changelog is off.
func (g *glusterRun) supervise(ctx context.Context) {
	changelogOn := g.vol.Options["changelog.changelog"] == "on"
	if !changelogOn {
		g.log.Warn("the volume's changelog is off: falling back to a hybrid crawl of each brick every change-interval; "+
			"turn it on with 'gluster volume set "+g.vol.Name+" changelog.changelog on'", "change_interval", g.cfg.ChangeInterval)
	}
	var run sync.WaitGroup
	for _, set := range g.order {
		for _, w := range g.sets[set] {
			var src changeSource = w.brickSource()
			if !changelogOn {
				src = w.crawlSource()
			}
			name := w.brick.name
			online := func(ctx context.Context) (bool, error) {
				st, err := glusterfs.GetVolumeStatus(ctx, g.cfg.GlusterCLI, g.cfg.VolfileServer, g.vol.Name)
				if err != nil {
					return false, err
				}
				return st[name].Online, nil
			}
			run.Go(func() {
				w.supervise(ctx, slaveLease{w}, func(ctx context.Context) error { return w.run(ctx, src) }, online)
			})
		}
	}
	run.Wait()
}

// setStatus records the worker's state (Active, Passive, Faulty) and why.
func (w *worker) setStatus(state, why string) {
	if w.stats.WorkerStatus != state && w.mon != nil {
		w.mon.stateEvent(w, state, why)
	}
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
