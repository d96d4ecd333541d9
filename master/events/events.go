// Package events announces what monitoring integrations subscribe to, as
// gsyncd does: a worker turning Active, Passive or Faulty, a checkpoint
// completed, and (georep's own) a pass a safety guard refused. They go to
// GlusterFS's events framework when the node has it (glustereventsd: a UDP
// datagram "<TIMESTAMP> <EVENT TYPE> key=value;key=value" on the port of
// its eventsconfig.json, the wire format of gsyncd's gf_event) and to an
// optional webhook (an HTTP POST of the JSON glustereventsd itself posts to
// its webhooks: {"nodeid", "ts", "event", "message"}).
//
// Delivery never holds up replication: Emit queues, one goroutine sends, a
// full queue drops the event with a warning, and a webhook that fails is
// retried a few times and then given up on (logged).
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Type is an event's name: glustereventsd's for gsyncd's events.
type Type string

// The events.
const (
	Active              Type = "GEOREP_ACTIVE"
	Passive             Type = "GEOREP_PASSIVE"
	Faulty              Type = "GEOREP_FAULTY"
	CheckpointCompleted Type = "GEOREP_CHECKPOINT_COMPLETED"
	// GuardRefused is georep's: a safety guard refused a pass (nothing was
	// applied). glustereventsd has no such type: it gets a GEOREP_FAULTY
	// with the guard's fields (the worker stops syncing, as a Faulty one).
	GuardRefused Type = "GEOREP_GUARD_REFUSED"
)

// glusterTypes are the events' numbers in glustereventsd's list of event
// types (gfevents/eventtypes.py, all_events): the list only grows, so
// these hold for every GlusterFS release that has them.
var glusterTypes = map[Type]int{Faulty: 91, CheckpointCompleted: 92, Active: 93, Passive: 94, GuardRefused: 91}

// Field is one key=value of an event, in the order given.
type Field struct{ Key, Value string }

// Event is one announcement.
type Event struct {
	Type   Type
	Time   time.Time
	Fields []Field
}

// Config says where events go.
type Config struct {
	// Gluster is gluster-events: "auto" (to glustereventsd on this node
	// when GlusterFS's events framework is installed: its port from
	// eventsconfig.json), "off", or host:port.
	Gluster string
	// Webhook is events-webhook: a http(s) URL each event is POSTed to
	// ("" : none).
	Webhook string
	// NodeID is the webhook document's nodeid (glusterd's UUID on a
	// GlusterFS node; else the host name).
	NodeID string
	// ConfigFiles are where "auto" looks for glustereventsd's port, first
	// found wins (nil: DefaultConfigFiles).
	ConfigFiles []string
}

// DefaultConfigFiles are glustereventsd's own: the cluster's custom
// config, then the package's default.
var DefaultConfigFiles = []string{"/var/lib/glusterd/events/config.json", "/etc/glusterfs/eventsconfig.json"}

// queueLen bounds the events waiting to be sent.
const queueLen = 256

// Emitter sends events. Its zero value and a nil *Emitter discard them.
type Emitter struct {
	log     *slog.Logger
	udp     *net.UDPAddr // nil: not to glustereventsd
	webhook string
	nodeID  string
	client  *http.Client
	q       chan Event
	dropped atomic.Int64
	retry   time.Duration // first wait before a webhook retry
}

// New checks cfg and returns an Emitter; call Run to send.
func New(cfg Config, log *slog.Logger) (*Emitter, error) {
	e := &Emitter{log: log, webhook: cfg.Webhook, nodeID: cfg.NodeID, q: make(chan Event, queueLen),
		client: &http.Client{Timeout: 5 * time.Second}, retry: time.Second}
	switch g := cfg.Gluster; g {
	case "off":
	case "", "auto":
		files := cfg.ConfigFiles
		if files == nil {
			files = DefaultConfigFiles
		}
		port, file, err := glusterPort(files)
		switch {
		case err != nil:
			return nil, fmt.Errorf("gluster-events auto: %w", err)
		case port > 0:
			e.udp = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
			log.Info("events go to glustereventsd", "addr", e.udp.String(), "config", file)
		}
	default:
		addr, err := net.ResolveUDPAddr("udp", g)
		if err != nil {
			return nil, fmt.Errorf("gluster-events: %q is not auto, off or host:port: %w", g, err)
		}
		e.udp = addr
	}
	if cfg.Webhook != "" {
		u, err := url.Parse(cfg.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("events-webhook: %q is not a http:// or https:// URL", cfg.Webhook)
		}
	}
	return e, nil
}

// glusterPort reads glustereventsd's port from the first of files that
// exists (0 when none does: the events framework is not installed).
func glusterPort(files []string) (int, string, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, f, err
		}
		var c struct {
			Port *int `json:"port"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return 0, f, fmt.Errorf("%s: %w", f, err)
		}
		if c.Port == nil {
			continue // a custom config that leaves the port to the default's
		}
		if *c.Port < 1 || *c.Port > 65535 {
			return 0, f, fmt.Errorf("%s: port %d is out of range", f, *c.Port)
		}
		return *c.Port, f, nil
	}
	return 0, "", nil
}

// Enabled says whether events go anywhere.
func (e *Emitter) Enabled() bool { return e != nil && (e.udp != nil || e.webhook != "") }

// Emit queues ev (its Time set to now when zero); it never blocks.
func (e *Emitter) Emit(ev Event) {
	if !e.Enabled() {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	select {
	case e.q <- ev:
	default:
		if n := e.dropped.Add(1); n == 1 || n%100 == 0 {
			e.log.Warn("events queue full: event dropped", "event", string(ev.Type), "dropped", n)
		}
	}
}

// Run sends queued events until ctx is done, then what is still queued:
// sending goes on for at most drainTime after ctx is done.
func (e *Emitter) Run(ctx context.Context) {
	if !e.Enabled() {
		return
	}
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drainTime, cancel) })
	defer stop()
	for {
		select {
		case ev := <-e.q:
			e.send(sendCtx, ev)
			continue
		case <-ctx.Done():
		}
		for {
			select {
			case ev := <-e.q:
				e.send(sendCtx, ev)
			default:
				return
			}
		}
	}
}

// drainTime bounds the sending after Run's context is done.
const drainTime = 3 * time.Second

func (e *Emitter) send(ctx context.Context, ev Event) {
	if e.udp != nil {
		if err := e.sendGluster(ev); err != nil {
			e.log.Warn("event to glustereventsd", "event", string(ev.Type), "addr", e.udp.String(), "err", err)
		}
	}
	if e.webhook != "" {
		e.sendWebhook(ctx, ev)
	}
}

// GlusterMessage is ev as glustereventsd reads it: "<unix seconds> <type
// number> k=v;k=v". Its parser splits on ';' and '=', so values have them
// replaced (by ',' and ':'), and newlines by spaces.
func GlusterMessage(ev Event) string {
	typ := ev.Type
	fields := ev.Fields
	if typ == GuardRefused {
		fields = append([]Field{{"guard_refused", "true"}}, fields...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d ", ev.Time.Unix(), glusterTypes[typ])
	clean := strings.NewReplacer(";", ",", "=", ":", "\n", " ", "\r", " ")
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(clean.Replace(f.Key))
		b.WriteByte('=')
		b.WriteString(clean.Replace(f.Value))
	}
	return b.String()
}

func (e *Emitter) sendGluster(ev Event) error {
	c, err := net.DialUDP("udp", nil, e.udp)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(GlusterMessage(ev)))
	return err
}

// WebhookDocument is what the webhook receives: glustereventsd's document.
type WebhookDocument struct {
	NodeID  string            `json:"nodeid"`
	TS      int64             `json:"ts"`
	Event   string            `json:"event"`
	Message map[string]string `json:"message"`
}

func (e *Emitter) sendWebhook(ctx context.Context, ev Event) {
	doc := WebhookDocument{NodeID: e.nodeID, TS: ev.Time.Unix(), Event: string(ev.Type), Message: map[string]string{}}
	for _, f := range ev.Fields {
		doc.Message[f.Key] = f.Value
	}
	body, err := json.Marshal(doc)
	if err != nil {
		e.log.Warn("event to the webhook", "event", doc.Event, "err", err)
		return
	}
	wait := e.retry
	for attempt := 1; ; attempt++ {
		err := e.post(ctx, body)
		if err == nil {
			return
		}
		if attempt == 3 || ctx.Err() != nil {
			e.log.Warn("event to the webhook: given up", "event", doc.Event, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait *= 2
	}
}

func (e *Emitter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", Redact(e.webhook), resp.Status)
	}
	return nil
}

// Redact is u without its user info and query (where tokens live), to
// show or log.
func Redact(u string) string {
	p, err := url.Parse(u)
	if u == "" {
		return ""
	}
	if err != nil {
		return "the webhook"
	}
	p.User, p.RawQuery = nil, ""
	return p.String()
}

// Unix is t as gsyncd's events give times: seconds since the epoch.
func Unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
