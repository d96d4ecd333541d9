package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georep/georep/master/events"
)

// eventSink stands in for glustereventsd (a UDP socket reading gsyncd's
// datagrams) and for a webhook (an HTTP server on loopback), and keeps
// what both received.
type eventSink struct {
	udp  net.PacketConn
	http *httptest.Server

	mu       sync.Mutex
	gluster  []string // "<ts> <type> k=v;..."
	webhooks []events.WebhookDocument
}

func newEventSink(t *testing.T) *eventSink {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &eventSink{udp: pc}
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d events.WebhookDocument
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.webhooks = append(s.webhooks, d)
		s.mu.Unlock()
	}))
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.gluster = append(s.gluster, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); s.http.Close() })
	return s
}

// args are the master's flags that send events here.
func (s *eventSink) args() []string {
	return []string{"--gluster-events", s.udp.LocalAddr().String(), "--events-webhook", s.http.URL + "/georep"}
}

// wait returns once both sinks hold an event matching: the datagram of
// glustereventsd type number num containing gl, and the webhook document
// of type typ whose message fields contain want's values.
func (s *eventSink) wait(t *testing.T, num int, gl string, typ events.Type, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		s.mu.Lock()
		var udpOK, hookOK bool
		for _, m := range s.gluster {
			parts := strings.SplitN(m, " ", 3)
			udpOK = udpOK || len(parts) == 3 && parts[1] == strconv.Itoa(num) && strings.Contains(parts[2], gl)
		}
		for _, d := range s.webhooks {
			ok := d.Event == string(typ) && d.NodeID != "" && d.TS > 0
			for k, v := range want {
				ok = ok && strings.Contains(d.Message[k], v)
			}
			hookOK = hookOK || ok
		}
		got, hooks := append([]string(nil), s.gluster...), append([]events.WebhookDocument(nil), s.webhooks...)
		s.mu.Unlock()
		if udpOK && hookOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not received (glustereventsd %v: %v; webhook: %v):\nglustereventsd got %q\nwebhook got %+v", typ, num, udpOK, hookOK, got, hooks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *eventSink) count(typ events.Type) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.webhooks {
		if d.Event == string(typ) {
			n++
		}
	}
	return n
}
