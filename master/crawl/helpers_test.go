package crawl

import (
	"context"
	"net"
	"os/exec"
	"testing"
)

func listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }

func removeTree(path string) { exec.Command("rm", "-rf", path).Run() }

func withCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
