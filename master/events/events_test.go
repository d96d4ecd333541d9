package events

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestGlusterMessage(t *testing.T) {
	at := time.Unix(1765000000, 0)
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Type: Active, Time: at, Fields: []Field{{"primary_volume", "mvol"}, {"brick_path", "/b1"}}},
			"1765000000 93 primary_volume=mvol;brick_path=/b1"},
		{Event{Type: Passive, Time: at, Fields: []Field{{"brick_path", "/b1"}}}, "1765000000 94 brick_path=/b1"},
		{Event{Type: Faulty, Time: at, Fields: []Field{{"reason", "a=b; c\nd"}}}, "1765000000 91 reason=a:b, c d"},
		{Event{Type: CheckpointCompleted, Time: at, Fields: []Field{{"checkpoint_time", "1"}}}, "1765000000 92 checkpoint_time=1"},
		{Event{Type: GuardRefused, Time: at, Fields: []Field{{"guard", "max-delete"}}}, "1765000000 91 guard_refused=true;guard=max-delete"},
	} {
		if got := GlusterMessage(tc.ev); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.ev.Type, got, tc.want)
		}
		// glustereventsd's parser: ts, key, value = data.split(" ", 2);
		// dict(x.split('=') for x in value.split(';')) must not fail.
		parts := strings.SplitN(GlusterMessage(tc.ev), " ", 3)
		for _, kv := range strings.Split(parts[2], ";") {
			if strings.Count(kv, "=") != 1 {
				t.Errorf("%s: %q does not parse as key=value", tc.ev.Type, kv)
			}
		}
	}
}

func TestGlusterPort(t *testing.T) {
	dir := t.TempDir()
	custom, def := filepath.Join(dir, "custom.json"), filepath.Join(dir, "eventsconfig.json")
	files := []string{custom, def}
	if p, _, err := glusterPort(files); err != nil || p != 0 {
		t.Fatalf("no framework: port %d, %v", p, err)
	}
	os.WriteFile(def, []byte(`{"log-level": "INFO", "port": 24009, "disable-events-log": false}`), 0o644)
	if p, f, err := glusterPort(files); err != nil || p != 24009 || f != def {
		t.Fatalf("default config: port %d from %s, %v", p, f, err)
	}
	os.WriteFile(custom, []byte(`{"log-level": "DEBUG"}`), 0o644)
	if p, _, err := glusterPort(files); err != nil || p != 24009 {
		t.Fatalf("custom config without a port: %d, %v", p, err)
	}
	os.WriteFile(custom, []byte(`{"port": 55555}`), 0o644)
	if p, f, err := glusterPort(files); err != nil || p != 55555 || f != custom {
		t.Fatalf("custom port: %d from %s, %v", p, f, err)
	}
	os.WriteFile(custom, []byte(`{"port": 0}`), 0o644)
	if _, _, err := glusterPort(files); err == nil {
		t.Error("port 0 accepted")
	}
	os.WriteFile(custom, []byte(`not json`), 0o644)
	if _, _, err := glusterPort(files); err == nil {
		t.Error("a config that is not JSON accepted")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []Config{{Gluster: "nonsense"}, {Gluster: "off", Webhook: "ftp://x/"}, {Gluster: "off", Webhook: "http://"}} {
		if _, err := New(cfg, quiet); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	e, err := New(Config{Gluster: "auto", ConfigFiles: []string{filepath.Join(t.TempDir(), "none")}}, quiet)
	if err != nil || e.Enabled() {
		t.Errorf("auto without the framework and no webhook: enabled %v, %v", e.Enabled(), err)
	}
}

// TestDelivery sends events to a UDP socket standing in for glustereventsd
// and to a real HTTP server, a webhook that fails once first.
func TestDelivery(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var docs []WebhookDocument
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var d WebhookDocument
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&d) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		docs = append(docs, d)
	}))
	defer srv.Close()
	e, err := New(Config{Gluster: pc.LocalAddr().String(), Webhook: srv.URL + "/hook", NodeID: "node-uuid"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	e.retry = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	at := time.Unix(1765000000, 0)
	e.Emit(Event{Type: Active, Time: at, Fields: []Field{{"brick_path", "/b1"}}})
	e.Emit(Event{Type: GuardRefused, Time: at, Fields: []Field{{"guard", "max-delete"}}})

	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	buf := make([]byte, 4096)
	for len(got) < 2 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("glustereventsd got %q, then: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if got[0] != "1765000000 93 brick_path=/b1" || got[1] != "1765000000 91 guard_refused=true;guard=max-delete" {
		t.Errorf("glustereventsd got %q", got)
	}
	cancel()
	<-done // Run sends what is queued before it returns
	mu.Lock()
	defer mu.Unlock()
	if len(docs) != 2 || docs[0].Event != "GEOREP_ACTIVE" || docs[0].NodeID != "node-uuid" || docs[0].TS != 1765000000 ||
		docs[0].Message["brick_path"] != "/b1" || docs[1].Event != "GEOREP_GUARD_REFUSED" || docs[1].Message["guard"] != "max-delete" {
		t.Errorf("webhook got %+v after %d calls", docs, calls)
	}
}

// TestEmitNeverBlocks: with nothing sending, Emit drops what the queue
// cannot hold instead of waiting.
func TestEmitNeverBlocks(t *testing.T) {
	e, err := New(Config{Gluster: "127.0.0.1:9"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for range queueLen + 10 {
		e.Emit(Event{Type: Active})
	}
	if d := e.dropped.Load(); d != 10 {
		t.Errorf("dropped %d, want 10", d)
	}
	var nilEmitter *Emitter
	nilEmitter.Emit(Event{Type: Active}) // discards
}
