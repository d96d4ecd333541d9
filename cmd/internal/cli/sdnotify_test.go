package cli

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNotifier sends to a real notify socket: READY=1 with its STATUS,
// WATCHDOG=1 once per half of WATCHDOG_USEC however often Alive is called,
// none without a watchdog, STOPPING=1; nothing at all without
// NOTIFY_SOCKET.
func TestNotifier(t *testing.T) {
	for _, tc := range []struct {
		name     string
		socket   bool
		watchdog string // WATCHDOG_USEC
		want     []string
	}{
		{name: "watchdog", socket: true, watchdog: "3600000000", want: []string{"READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"}},
		{name: "no watchdog", socket: true, want: []string{"READY=1\nSTATUS=up", "STOPPING=1\nSTATUS=stopping"}},
		{name: "another pid's watchdog", socket: true, watchdog: "3600000000", want: []string{"READY=1\nSTATUS=up", "STOPPING=1\nSTATUS=stopping"}},
		{name: "not under systemd", watchdog: "3600000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "sdn")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			p := filepath.Join(dir, "s")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t.Setenv("NOTIFY_SOCKET", "")
			if tc.socket {
				t.Setenv("NOTIFY_SOCKET", p)
			}
			t.Setenv("WATCHDOG_USEC", tc.watchdog)
			t.Setenv("WATCHDOG_PID", "")
			if tc.name == "another pid's watchdog" {
				t.Setenv("WATCHDOG_PID", "1")
			}
			n := NewNotifier(slog.New(slog.DiscardHandler))
			n.Ready("up")
			for range 3 {
				n.Alive() // one ping: the next is due in 30 minutes
			}
			n.Stopping()
			// A marker sent by the test itself ends what is read.
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: p, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("END"))
			c.Close()
			var got []string
			buf := make([]byte, 1024)
			for {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				k, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("reading the notify socket: %v (got %q)", err, got)
				}
				if string(buf[:k]) == "END" {
					break
				}
				got = append(got, string(buf[:k]))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("sent %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("message %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
