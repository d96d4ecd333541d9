package glusterfs

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/glusterfs/mount"
)

// Volume is a GlusterFS volume as `gluster volume info --xml` describes it.
type Volume struct {
	Name          string
	ID            string // the volume's UUID, canonical lower-case form
	Type          string // Distribute, Replicate, Distributed-Replicate, Disperse, ...
	Status        string // Created, Started, Stopped
	ReplicaCount  int    // bricks per replica set (1: no replication)
	ArbiterCount  int
	DisperseCount int // bricks per disperse set (0: not dispersed)
	DistCount     int
	Bricks        []Brick           // in volume order
	Options       map[string]string // the options set on the volume (changelog.changelog, ...)
}

// Brick is one brick of a volume.
type Brick struct {
	Host     string // as the volume names it (a host name or address)
	Path     string // the brick directory on Host
	HostUUID string // glusterd node UUID of Host
	Index    int    // position in the volume, from 0
	// ReplicaSet is the subvolume the brick belongs to, Index / ReplicaCount
	// (Index / DisperseCount for a dispersed volume): the bricks of one
	// replica set hold the same files, and gsyncd's monitor lets one worker
	// per set be Active.
	ReplicaSet int
	Arbiter    bool // an arbiter brick holds names and metadata, no data
}

// String returns "host:path", the way gluster names a brick.
func (b Brick) String() string { return b.Host + ":" + b.Path }

// Sentinel errors of the volume functions.
var (
	// ErrNoVolume: glusterd does not know the volume.
	ErrNoVolume = errors.New("volume does not exist")
	// ErrNotServable: georep cannot replicate the volume from its bricks.
	ErrNotServable = errors.New("volume cannot be replicated from its bricks")
)

// opErrnoNoVolume is the opErrno the CLI reports for an unknown volume
// (EG_NOVOL in glusterd's errno.h).
const opErrnoNoVolume = 30806

// CLIError is an error answer of the gluster CLI.
type CLIError struct {
	Op      string // the command, e.g. "volume info georep"
	OpRet   int
	OpErrno int
	Msg     string // the CLI's message (opErrstr, or its stderr)
}

func (e *CLIError) Error() string {
	if e.OpErrno != 0 {
		return fmt.Sprintf("gluster %s: %s (opRet %d, opErrno %d)", e.Op, e.Msg, e.OpRet, e.OpErrno)
	}
	return fmt.Sprintf("gluster %s: %s", e.Op, e.Msg)
}

// Is makes an unknown volume errors.Is(err, ErrNoVolume).
func (e *CLIError) Is(target error) bool {
	return target == ErrNoVolume && (e.OpErrno == opErrnoNoVolume || strings.Contains(strings.ToLower(e.Msg), "does not exist"))
}

// cliOutput is the envelope of every `gluster ... --xml` answer.
type cliOutput struct {
	XMLName  xml.Name    `xml:"cliOutput"`
	OpRet    int         `xml:"opRet"`
	OpErrno  int         `xml:"opErrno"`
	OpErrstr string      `xml:"opErrstr"`
	Volumes  []xmlVolume `xml:"volInfo>volumes>volume"`
}

type xmlVolume struct {
	Name          string `xml:"name"`
	ID            string `xml:"id"`
	StatusStr     string `xml:"statusStr"`
	TypeStr       string `xml:"typeStr"`
	BrickCount    int    `xml:"brickCount"`
	DistCount     int    `xml:"distCount"`
	ReplicaCount  int    `xml:"replicaCount"`
	ArbiterCount  int    `xml:"arbiterCount"`
	DisperseCount int    `xml:"disperseCount"`
	Bricks        []struct {
		Name      string `xml:"name"`
		HostUUID  string `xml:"hostUuid"`
		IsArbiter int    `xml:"isArbiter"`
	} `xml:"bricks>brick"`
	Options []struct {
		Name  string `xml:"name"`
		Value string `xml:"value"`
	} `xml:"options>option"`
}

// ParseVolumeInfo parses the output of `gluster --xml volume info [NAME]`.
// An error answer of the CLI (opRet not 0) is a *CLIError, errors.Is
// ErrNoVolume for an unknown volume. Every volume must be well formed: a
// UUID id, "host:/path" bricks, as many bricks as brickCount, a brick count
// that is a multiple of the replica (or disperse) count.
func ParseVolumeInfo(data []byte) ([]Volume, error) {
	var out cliOutput
	if err := xml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("parse gluster volume info: %w", err)
	}
	if out.OpRet != 0 {
		return nil, &CLIError{Op: "volume info", OpRet: out.OpRet, OpErrno: out.OpErrno, Msg: out.OpErrstr}
	}
	vols := make([]Volume, 0, len(out.Volumes))
	for _, x := range out.Volumes {
		v, err := x.volume()
		if err != nil {
			return nil, fmt.Errorf("parse gluster volume info: volume %q: %w", x.Name, err)
		}
		vols = append(vols, v)
	}
	return vols, nil
}

func (x xmlVolume) volume() (Volume, error) {
	v := Volume{
		Name: x.Name, Type: x.TypeStr, Status: x.StatusStr,
		ReplicaCount: x.ReplicaCount, ArbiterCount: x.ArbiterCount,
		DisperseCount: x.DisperseCount, DistCount: x.DistCount,
		Options: make(map[string]string, len(x.Options)),
	}
	if v.Name == "" {
		return v, errors.New("no name")
	}
	id, err := gfid.Parse(strings.TrimSpace(x.ID))
	if err != nil {
		return v, fmt.Errorf("volume id: %w", err)
	}
	v.ID = id.String()
	if len(x.Bricks) != x.BrickCount {
		return v, fmt.Errorf("%d bricks listed, brickCount %d", len(x.Bricks), x.BrickCount)
	}
	set := v.setSize()
	if x.BrickCount%set != 0 {
		return v, fmt.Errorf("%d bricks is not a multiple of the set size %d", x.BrickCount, set)
	}
	for i, xb := range x.Bricks {
		b, err := parseBrickName(xb.Name)
		if err != nil {
			return v, err
		}
		b.HostUUID = strings.TrimSpace(xb.HostUUID)
		b.Index, b.ReplicaSet, b.Arbiter = i, i/set, xb.IsArbiter != 0
		v.Bricks = append(v.Bricks, b)
	}
	for _, o := range x.Options {
		v.Options[o.Name] = o.Value
	}
	return v, nil
}

// setSize is the number of bricks in one subvolume (replica or disperse set).
func (v *Volume) setSize() int {
	switch {
	case v.DisperseCount > 0:
		return v.DisperseCount
	case v.ReplicaCount > 1:
		return v.ReplicaCount
	}
	return 1
}

// parseBrickName splits "host:/path" at the colon before the path (a host
// may itself hold colons: an IPv6 address).
func parseBrickName(name string) (Brick, error) {
	i := strings.Index(name, ":/")
	if i <= 0 {
		return Brick{}, fmt.Errorf("brick %q is not host:/path", name)
	}
	return Brick{Host: name[:i], Path: filepath.Clean(name[i+1:])}, nil
}

// Servable returns nil if georep can replicate the volume from its bricks,
// else an error wrapping ErrNotServable that says why: the volume is not
// Started (its bricks write no changelogs and it cannot be mounted), or it is
// dispersed (a disperse brick holds erasure-coded fragments, not files).
func (v *Volume) Servable() error {
	switch {
	case v.DisperseCount > 0 || strings.Contains(strings.ToLower(v.Type), "disperse"):
		return fmt.Errorf("volume %s: %w: it is %s (disperse %d): its bricks hold erasure-coded fragments, not files",
			v.Name, ErrNotServable, v.Type, v.DisperseCount)
	case v.Status != "Started":
		return fmt.Errorf("volume %s: %w: it is %s, not Started", v.Name, ErrNotServable, v.Status)
	}
	return nil
}

// LocalBricks returns the bricks whose host is the glusterd node nodeUUID
// (see LocalNodeUUID), in volume order.
func (v *Volume) LocalBricks(nodeUUID string) []Brick {
	var bs []Brick
	for _, b := range v.Bricks {
		if strings.EqualFold(b.HostUUID, nodeUUID) {
			bs = append(bs, b)
		}
	}
	return bs
}

// GetVolume asks the gluster CLI (cliPath; "" finds gluster in PATH or the
// sbin directories) about volume name. The CLI talks to the local glusterd
// unless volfileServer names another host, which it then asks with
// --remote-host. An unknown volume is errors.Is ErrNoVolume; every error
// names the volume and carries what the CLI said.
func GetVolume(ctx context.Context, cliPath, volfileServer, name string) (*Volume, error) {
	if name == "" {
		return nil, errors.New("gluster volume info: no volume name")
	}
	stdout, stderr, runErr, err := runCLI(ctx, cliPath, volfileServer, "volume", "info", name)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	vols, err := ParseVolumeInfo(stdout.Bytes())
	if err != nil {
		var ce *CLIError
		if errors.As(err, &ce) {
			ce.Op = "volume info " + name
			return nil, ce
		}
		if runErr != nil { // no XML at all: the CLI failed before answering
			return nil, &CLIError{Op: "volume info " + name, Msg: cliMessage(runErr, stdout.Bytes(), stderr.Bytes())}
		}
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	if runErr != nil {
		return nil, &CLIError{Op: "volume info " + name, Msg: cliMessage(runErr, stdout.Bytes(), stderr.Bytes())}
	}
	for i := range vols {
		if vols[i].Name == name {
			return &vols[i], nil
		}
	}
	return nil, &CLIError{Op: "volume info " + name, Msg: fmt.Sprintf("answer holds no volume %q (%d volumes)", name, len(vols))}
}

// runCLI runs the gluster CLI (cliPath; "" finds gluster in PATH or the
// sbin directories) with --xml, against volfileServer with --remote-host
// when it is not this node. err is set when the CLI could not run at all or
// ctx ended; runErr is the CLI's own failure, whose answer may still be in
// stdout.
func runCLI(ctx context.Context, cliPath, volfileServer string, args ...string) (stdout, stderr *bytes.Buffer, runErr, err error) {
	cli, err := mount.FindBinary(cliPath, "gluster")
	if err != nil {
		return nil, nil, nil, err
	}
	all := []string{"--mode=script", "--xml"}
	if volfileServer != "" && !isLocalHost(ctx, volfileServer) {
		all = append(all, "--remote-host="+volfileServer)
	}
	cmd := exec.CommandContext(ctx, cli, append(all, args...)...)
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr = cmd.Run()
	if ctx.Err() != nil {
		return nil, nil, nil, fmt.Errorf("gluster %s: %w", strings.Join(args, " "), ctx.Err())
	}
	return stdout, stderr, runErr, nil
}

func cliMessage(runErr error, stdout, stderr []byte) string {
	msg := strings.TrimSpace(string(stderr))
	if msg == "" {
		msg = strings.TrimSpace(string(stdout))
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	if msg == "" {
		return runErr.Error()
	}
	return fmt.Sprintf("%v: %s", runErr, msg)
}

// isLocalHost reports whether host names this node: localhost, a loopback
// address, or an address of one of its interfaces. A name that does not
// resolve is not local.
func isLocalHost(ctx context.Context, host string) bool {
	if host == "localhost" {
		return true
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false
	}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if a.IP.IsLoopback() {
			return true
		}
		for _, ia := range ifaddrs {
			if n, ok := ia.(*net.IPNet); ok && n.IP.Equal(a.IP) {
				return true
			}
		}
	}
	return false
}
