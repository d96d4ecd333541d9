package cli

import (
	"log/slog"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier tells systemd how a daemon started with Type=notify is doing
// (sd_notify through NOTIFY_SOCKET, github.com/coreos/go-systemd): READY=1
// once it serves, WATCHDOG=1 while it is alive, STOPPING=1 when it stops.
// Without NOTIFY_SOCKET (not under systemd, or Type=exec) every method
// does nothing. The environment is left as it is: with NotifyAccess=main
// systemd ignores what the daemon's children (rsync, the tunnel, glusterfs)
// might send, and WATCHDOG_PID, when systemd sets it, names the daemon
// only.
type Notifier struct {
	log *slog.Logger
	// every is how often a watchdog ping is due (half of WatchdogSec); 0:
	// no watchdog.
	every time.Duration

	mu       sync.Mutex
	lastPing time.Time
	warned   bool
}

// NewNotifier reads the watchdog's settings (WATCHDOG_USEC, WATCHDOG_PID)
// of the environment.
func NewNotifier(log *slog.Logger) *Notifier {
	n := &Notifier{log: log}
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog: its settings cannot be read; no pings are sent", "err", err)
	}
	n.every = d / 2
	return n
}

// Ready says that the daemon serves (READY=1), with status as its STATUS=
// line.
func (n *Notifier) Ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Stopping says that the daemon is shutting down (STOPPING=1).
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") }

// Alive is called by the daemon's own loop each time it has done a round
// (the master's monitor, the slave's lease watch): when a watchdog ping is
// due it sends one (WATCHDOG=1). A loop that stops, or hangs, stops the
// pings, and systemd restarts the service after WatchdogSec.
func (n *Notifier) Alive() {
	if n.every <= 0 {
		return
	}
	now := time.Now()
	n.mu.Lock()
	due := now.Sub(n.lastPing) >= n.every
	if due {
		n.lastPing = now
	}
	n.mu.Unlock()
	if due {
		n.send(daemon.SdNotifyWatchdog)
	}
}

func (n *Notifier) send(state string) {
	_, err := daemon.SdNotify(false, state)
	if err == nil {
		return
	}
	n.mu.Lock()
	warned := n.warned
	n.warned = true
	n.mu.Unlock()
	if !warned {
		n.log.Warn("telling systemd (sd_notify) failed", "err", err)
	}
}
