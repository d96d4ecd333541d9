package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/georep/georep/master/glusterfs"
)

// defaultStatusPort is the port --gluster-volume expects every node's
// status service on (--status-listen HOST:7101) unless --status-port says
// otherwise.
const defaultStatusPort = 7101

// glusterTimeout bounds the gluster CLI's answer about the volume.
const glusterTimeout = 30 * time.Second

// volumeMasters returns the status services of the masters of v: one per
// node holding a brick (an arbiter brick too: its node runs a worker),
// HOST:port, in the order of the volume's bricks, each node once.
func volumeMasters(v *glusterfs.Volume, port int) []string {
	var addrs []string
	seen := map[string]bool{}
	for _, b := range v.Bricks {
		h := strings.ToLower(b.Host)
		if seen[h] {
			continue
		}
		seen[h] = true
		addrs = append(addrs, net.JoinHostPort(b.Host, strconv.Itoa(port)))
	}
	return addrs
}

// getVolume is glusterfs.GetVolume, replaced in tests.
type getVolume func(ctx context.Context, cliPath, volfileServer, name string) (*glusterfs.Volume, error)

// discoverMasters asks the gluster CLI (cliPath; "" finds it) for volume
// name and returns its masters' status services (volumeMasters).
func discoverMasters(ctx context.Context, get getVolume, cliPath, name string, port int) ([]string, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("--status-port %d: not a TCP port", port)
	}
	ctx, cancel := context.WithTimeout(ctx, glusterTimeout)
	defer cancel()
	v, err := get(ctx, cliPath, "", name)
	if err != nil {
		return nil, fmt.Errorf("finding the masters of volume %s: %w", name, err)
	}
	addrs := volumeMasters(v, port)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("finding the masters of volume %s: it has no bricks", name)
	}
	return addrs, nil
}
