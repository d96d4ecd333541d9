package gluster

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// VolumeOpts shape a volume.
type VolumeOpts struct {
	// Bricks is the number of bricks; 0 means Replica, or 1.
	Bricks int
	// Replica is the replica count; 0 or 1 make a plain distribute volume.
	// Bricks must be a multiple of it.
	Replica int
	// Changelog turns the changelog translator on (changelog.changelog) before
	// the volume starts.
	Changelog bool
	// RolloverTime is changelog.rollover-time, rounded up to whole seconds;
	// 0 keeps GlusterFS's default (15 s).
	RolloverTime time.Duration
}

func (o VolumeOpts) layout() (bricks, replica int, err error) {
	bricks, replica = o.Bricks, max(o.Replica, 1)
	if bricks == 0 {
		bricks = replica
	}
	if bricks < 1 || o.Replica < 0 || bricks%replica != 0 {
		return 0, 0, fmt.Errorf("bad volume layout: %d bricks, replica %d", o.Bricks, o.Replica)
	}
	return bricks, replica, nil
}

// Brick is one brick of a volume.
type Brick struct {
	Host string
	Path string // the brick directory on this host
}

// GFID returns the gfid GlusterFS gave the file at rel (relative to the
// brick), from its trusted.gfid xattr, as a UUID string.
func (b Brick) GFID(rel string) (string, error) {
	p := filepath.Join(b.Path, rel)
	buf := make([]byte, 16)
	n, err := unix.Lgetxattr(p, "trusted.gfid", buf)
	if err != nil {
		return "", fmt.Errorf("trusted.gfid of %s: %w", p, err)
	}
	if n != 16 {
		return "", fmt.Errorf("trusted.gfid of %s: %d bytes, want 16", p, n)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16]), nil
}

// Volume is a started volume a test created.
type Volume struct {
	Name   string
	ID     string // the volume's UUID
	Bricks []Brick

	host    string
	sockets map[string]bool // the sockets in runDir before the volume was created
}

// VolumeInfo is what `gluster volume info --xml` says about a volume.
type VolumeInfo struct {
	Name         string
	ID           string
	Status       string // Created, Started, Stopped
	Type         string // Distribute, Replicate, Distributed-Replicate, ...
	BrickCount   int
	DistCount    int
	ReplicaCount int
	Bricks       []Brick
	Options      map[string]string // the options set on the volume
}

// Volume creates and starts a volume named after name with a random suffix
// (names are unique across tests and runs), its bricks in a temporary
// directory of t, and waits until every brick process is online. When the
// test ends the volume is stopped and deleted, then its bricks removed.
func (c *Cluster) Volume(t testing.TB, name string, opts VolumeOpts) *Volume {
	t.Helper()
	bricks, replica, err := opts.layout()
	if err != nil {
		t.Fatalf("gluster volume %s: %v", name, err)
	}
	v := &Volume{Name: volumeName(name), host: c.Host, sockets: runSockets()}
	dir := t.TempDir()
	args := []string{"volume", "create", v.Name}
	if replica > 1 {
		args = append(args, "replica", strconv.Itoa(replica))
	}
	for i := range bricks {
		b := Brick{Host: c.Host, Path: filepath.Join(dir, fmt.Sprintf("brick%d", i))}
		if err := os.Mkdir(b.Path, 0o755); err != nil {
			t.Fatal(err)
		}
		v.Bricks = append(v.Bricks, b)
		args = append(args, b.Host+":"+b.Path)
	}
	// The bricks are on the root file system (or wherever TMPDIR is), which
	// glusterd refuses without force.
	args = append(args, "force")
	if _, err := cli(args...); err != nil {
		t.Fatalf("gluster: %v", err)
	}
	t.Cleanup(func() {
		if err := v.destroy(); err != nil {
			t.Errorf("gluster: %v", err)
			return
		}
		v.removeLeftovers(!t.Failed())
	})
	if opts.Changelog {
		v.Set(t, "changelog.changelog", "on")
		if opts.RolloverTime > 0 {
			secs := int64((opts.RolloverTime + time.Second - 1) / time.Second)
			v.Set(t, "changelog.rollover-time", strconv.FormatInt(secs, 10))
		}
	}
	if _, err := cli("volume", "start", v.Name); err != nil {
		t.Fatalf("gluster: %v", err)
	}
	info := v.Info(t)
	v.ID = info.ID
	if len(info.Bricks) != len(v.Bricks) {
		t.Fatalf("gluster volume %s has bricks %v, want %v", v.Name, info.Bricks, v.Bricks)
	}
	if err := v.waitOnline(); err != nil {
		t.Fatalf("gluster: %v", err)
	}
	return v
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// volumeName makes a valid, unique volume name from a test's choice.
func volumeName(name string) string {
	name = nameRE.ReplaceAllString(name, "-")
	if len(name) > 32 {
		name = name[:32]
	}
	return fmt.Sprintf("georep-%s-%08x", name, rand.Uint32())
}

// Set sets a volume option (gluster volume set).
func (v *Volume) Set(t testing.TB, key, value string) {
	t.Helper()
	if _, err := cli("volume", "set", v.Name, key, value); err != nil {
		t.Fatalf("gluster: %v", err)
	}
}

// destroy stops (forcibly) and deletes the volume; its bricks are removed
// with the test's temporary directory afterwards.
func (v *Volume) destroy() error {
	_, stopErr := cli("volume", "stop", v.Name, "force")
	if _, err := cli("volume", "delete", v.Name); err != nil {
		if stopErr != nil {
			return fmt.Errorf("%w\n%w", stopErr, err)
		}
		return err
	}
	return nil
}

// runDir is where glusterd and the processes it starts put their sockets.
const runDir = "/var/run/gluster"

// removeLeftovers removes what glusterd leaves behind of a deleted volume:
// its empty run directories, the sockets of its brick and self-heal
// processes (those that appeared since the volume was created and that
// nothing listens on any more), and its brick logs unless they are wanted for
// a post-mortem.
func (v *Volume) removeLeftovers(removeLogs bool) {
	for _, dir := range []string{"vols", "shd"} {
		os.Remove(filepath.Join(runDir, dir, v.Name)) // only when empty
	}
	for p := range runSockets() {
		if v.sockets[p] {
			continue
		}
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			c.Close()
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			os.Remove(p)
		}
	}
	if !removeLogs {
		return
	}
	for _, b := range v.Bricks {
		// glusterd names a brick's log after its path: /a/b → a-b.log.
		name := strings.ReplaceAll(strings.TrimPrefix(b.Path, "/"), "/", "-") + ".log"
		os.Remove(filepath.Join("/var/log/glusterfs/bricks", name))
	}
}

// runSockets returns the paths of the sockets in runDir.
func runSockets() map[string]bool {
	ents, _ := os.ReadDir(runDir)
	socks := map[string]bool{}
	for _, e := range ents {
		if e.Type()&fs.ModeSocket != 0 {
			socks[filepath.Join(runDir, e.Name())] = true
		}
	}
	return socks
}

// Info returns what glusterd says about the volume.
func (v *Volume) Info(t testing.TB) VolumeInfo {
	t.Helper()
	out, err := cli("volume", "info", v.Name, "--xml")
	if err != nil {
		t.Fatalf("gluster: %v", err)
	}
	infos, err := parseVolumeInfo([]byte(out))
	if err != nil {
		t.Fatalf("gluster volume info %s: %v", v.Name, err)
	}
	if len(infos) != 1 || infos[0].Name != v.Name {
		t.Fatalf("gluster volume info %s: got %d volumes:\n%s", v.Name, len(infos), out)
	}
	return infos[0]
}

// cliOutput is the envelope of every `gluster ... --xml` answer.
type cliOutput struct {
	OpRet    int    `xml:"opRet"`
	OpErrno  int    `xml:"opErrno"`
	OpErrstr string `xml:"opErrstr"`
	Info     []struct {
		Name         string `xml:"name"`
		ID           string `xml:"id"`
		StatusStr    string `xml:"statusStr"`
		TypeStr      string `xml:"typeStr"`
		BrickCount   int    `xml:"brickCount"`
		DistCount    int    `xml:"distCount"`
		ReplicaCount int    `xml:"replicaCount"`
		Bricks       []struct {
			Name string `xml:"name"`
		} `xml:"bricks>brick"`
		Options []struct {
			Name  string `xml:"name"`
			Value string `xml:"value"`
		} `xml:"options>option"`
	} `xml:"volInfo>volumes>volume"`
	Status []struct {
		Nodes []statusNode `xml:"node"`
	} `xml:"volStatus>volumes>volume"`
}

type statusNode struct {
	Hostname string `xml:"hostname"`
	Path     string `xml:"path"`
	Status   int    `xml:"status"` // 1: online
	Port     string `xml:"port"`
	PID      int    `xml:"pid"`
}

func parseCLI(data []byte) (*cliOutput, error) {
	var out cliOutput
	if err := xml.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	if out.OpRet != 0 {
		return nil, fmt.Errorf("opRet %d, opErrno %d: %s", out.OpRet, out.OpErrno, out.OpErrstr)
	}
	return &out, nil
}

func parseVolumeInfo(data []byte) ([]VolumeInfo, error) {
	out, err := parseCLI(data)
	if err != nil {
		return nil, err
	}
	var infos []VolumeInfo
	for _, x := range out.Info {
		vi := VolumeInfo{
			Name: x.Name, ID: x.ID, Status: x.StatusStr, Type: x.TypeStr,
			BrickCount: x.BrickCount, DistCount: x.DistCount, ReplicaCount: x.ReplicaCount,
			Options: map[string]string{},
		}
		for _, b := range x.Bricks {
			host, path, ok := strings.Cut(b.Name, ":")
			if !ok {
				return nil, fmt.Errorf("volume %s: brick %q is not host:path", x.Name, b.Name)
			}
			vi.Bricks = append(vi.Bricks, Brick{Host: host, Path: path})
		}
		for _, o := range x.Options {
			vi.Options[o.Name] = o.Value
		}
		infos = append(infos, vi)
	}
	return infos, nil
}

// waitOnline polls `gluster volume status` until every brick of the volume
// is online with a port, so that a mount finds them all up.
func (v *Volume) waitOnline() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		out, err := cli("volume", "status", v.Name, "--xml")
		if err == nil {
			err = v.bricksOnline([]byte(out))
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("volume %s: bricks not online after %v: %w", v.Name, readyTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (v *Volume) bricksOnline(data []byte) error {
	out, err := parseCLI(data)
	if err != nil {
		return err
	}
	if len(out.Status) != 1 {
		return fmt.Errorf("status of %d volumes", len(out.Status))
	}
	online := map[string]bool{}
	for _, n := range out.Status[0].Nodes {
		if n.Status == 1 && n.Port != "" && n.Port != "N/A" && n.Port != "0" {
			online[n.Path] = true
		}
	}
	for _, b := range v.Bricks {
		if !online[b.Path] {
			return fmt.Errorf("brick %s:%s is not online", b.Host, b.Path)
		}
	}
	return nil
}
