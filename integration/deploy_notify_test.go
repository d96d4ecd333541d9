package integration

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// notifySocket is the socket systemd gives a Type=notify service in
// NOTIFY_SOCKET: a datagram socket the test listens on, with the sender's
// credentials on each message (SO_PASSCRED), as systemd checks them for
// NotifyAccess=main.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

type notifyMsg struct {
	pid    int32
	fields []string // "READY=1", "STATUS=…", one per line
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A short path: sun_path holds 108 bytes.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v %v", err, serr)
	}
	return &notifySocket{path: p, conn: conn}
}

// waitFor reads messages until one from pid holds field, or the deadline
// (a bound on a hung daemon, not a measure) passes.
func (s *notifySocket) waitFor(t *testing.T, pid int, field string, within time.Duration) notifyMsg {
	t.Helper()
	deadline := time.Now().Add(within)
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	for {
		if err := s.conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatalf("waiting for %s from pid %d: %v", field, pid, err)
		}
		m := notifyMsg{pid: -1, fields: strings.Split(strings.TrimSpace(string(buf[:n])), "\n")}
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
					m.pid = cred.Pid
				}
			}
		}
		if m.pid == int32(pid) {
			for _, f := range m.fields {
				if f == field {
					return m
				}
			}
		}
	}
}

// TestDeploySystemdNotify runs both daemons as a Type=notify unit with a
// watchdog would (NOTIFY_SOCKET, WATCHDOG_USEC; no WATCHDOG_PID, which
// exec cannot know before the start and which sd_watchdog_enabled does not
// require): each sends READY=1 once it serves — its listener accepts, the
// master's status socket answers — then WATCHDOG=1 from its own loop, and
// STOPPING=1 on SIGTERM, every message from the daemon's own pid
// (NotifyAccess=main).
func TestDeploySystemdNotify(t *testing.T) {
	harness.RequireRsync(t)
	src, replica, work := siteDirs(t)
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	const bound = 60 * time.Second
	env := func(s *notifySocket) []string {
		return harness.Env("NOTIFY_SOCKET="+s.path, "WATCHDOG_USEC=2000000") // a ping due every second
	}

	slaveSock := listenNotify(t)
	slaveAddr := harness.FreeAddr(t)
	slave := harness.StartProc(t, env(slaveSock), "georep-slave", "--listen", slaveAddr, "--root", replica, "--insecure")
	ready := slaveSock.waitFor(t, slave.Cmd.Process.Pid, "READY=1", bound)
	if !strings.Contains(strings.Join(ready.fields, "\n"), "STATUS=serving on "+slaveAddr) {
		t.Errorf("slave READY without its STATUS line: %q", ready.fields)
	}
	if c, err := net.Dial("tcp", slaveAddr); err != nil {
		t.Errorf("READY=1 but the slave does not accept on %s: %v", slaveAddr, err)
	} else {
		c.Close()
	}
	slaveSock.waitFor(t, slave.Cmd.Process.Pid, "WATCHDOG=1", bound)

	masterSock := listenNotify(t)
	master := harness.StartMasterProc(t, env(masterSock), harness.MasterArgsInsecure(slaveAddr, src, work)...)
	masterSock.waitFor(t, master.Cmd.Process.Pid, "READY=1", bound)
	if c, err := net.Dial("unix", filepath.Join(work, "status.sock")); err != nil {
		t.Errorf("READY=1 but the master's status socket does not accept: %v", err)
	} else {
		c.Close()
	}
	// Two pings: the loop goes on pinging, not once at start.
	masterSock.waitFor(t, master.Cmd.Process.Pid, "WATCHDOG=1", bound)
	masterSock.waitFor(t, master.Cmd.Process.Pid, "WATCHDOG=1", bound)

	for _, d := range []struct {
		name string
		p    *harness.Proc
		s    *notifySocket
	}{{"master", master, masterSock}, {"slave", slave, slaveSock}} {
		if err := d.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		d.s.waitFor(t, d.p.Cmd.Process.Pid, "STOPPING=1", bound)
		if code, ok := d.p.Wait(bound); !ok || code != 0 {
			t.Errorf("%s after SIGTERM: exit %d (ended: %v)", d.name, code, ok)
		}
	}
}
