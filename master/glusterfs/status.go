package glusterfs

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
)

// statusOutput is the answer of `gluster --xml volume status NAME`.
type statusOutput struct {
	XMLName  xml.Name `xml:"cliOutput"`
	OpRet    int      `xml:"opRet"`
	OpErrno  int      `xml:"opErrno"`
	OpErrstr string   `xml:"opErrstr"`
	Nodes    []struct {
		Hostname string `xml:"hostname"`
		Path     string `xml:"path"`
		PeerID   string `xml:"peerid"`
		Status   int    `xml:"status"`
		Port     string `xml:"port"`
		Pid      int    `xml:"pid"`
	} `xml:"volStatus>volumes>volume>node"`
}

// BrickStatus is one brick's process as `gluster volume status` reports it.
type BrickStatus struct {
	Online bool
	Pid    int
}

// ParseVolumeStatus parses `gluster --xml volume status NAME`, keyed by
// "host:path" (daemons such as the self-heal daemon are left out).
func ParseVolumeStatus(data []byte) (map[string]BrickStatus, error) {
	var out statusOutput
	if err := xml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("parse gluster volume status: %w", err)
	}
	if out.OpRet != 0 {
		return nil, &CLIError{Op: "volume status", OpRet: out.OpRet, OpErrno: out.OpErrno, Msg: out.OpErrstr}
	}
	m := map[string]BrickStatus{}
	for _, n := range out.Nodes {
		if len(n.Path) == 0 || n.Path[0] != '/' {
			continue // a daemon (self-heal, quota, ...), not a brick
		}
		m[n.Hostname+":"+n.Path] = BrickStatus{Online: n.Status == 1, Pid: n.Pid}
	}
	return m, nil
}

// GetVolumeStatus asks the gluster CLI (as GetVolume does) which bricks of
// volume name have a running brick process.
func GetVolumeStatus(ctx context.Context, cliPath, volfileServer, name string) (map[string]BrickStatus, error) {
	stdout, stderr, runErr, err := runCLI(ctx, cliPath, volfileServer, "volume", "status", name)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	m, err := ParseVolumeStatus(stdout.Bytes())
	if err != nil {
		var ce *CLIError
		if errors.As(err, &ce) {
			ce.Op = "volume status " + name
			return nil, ce
		}
		if runErr != nil {
			return nil, &CLIError{Op: "volume status " + name, Msg: cliMessage(runErr, stdout.Bytes(), stderr.Bytes())}
		}
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	return m, nil
}
