package crawl

import (
	"context"
	"net"
	"os/exec"
	"testing"
)

func net_listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }

func exec_rm(path string) { exec.Command("rm", "-rf", path).Run() }

func context_withCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
