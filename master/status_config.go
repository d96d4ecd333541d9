package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/georep/georep/master/events"
	"github.com/georep/georep/rpc/bwlimit"
	"github.com/georep/georep/rpc/duration"
)

// Errors of the live configuration.
var (
	errUnknownKey = errors.New("unknown key")
	errNotLive    = errors.New("cannot be changed while the master runs")
	errBadValue   = errors.New("invalid value")
)

// ErrConfig is a configuration the master cannot start with (georep-master
// exits 2, as for a bad flag).
var ErrConfig = errors.New("configuration")

// configValue is one configuration key of the running master.
type configValue struct {
	Key, Value string
	Live       bool   // SetConfig may change it
	Source     string // where Value comes from: default, file, env, flag or live
}

// Where a key's value comes from (cmd/internal/cli's names, and live).
const (
	sourceDefault = "default"
	sourceLive    = "live"
)

// liveFile holds, in the work dir, the keys changed with config set: they
// outlive a restart, over what the flags, environment and file say, until
// config reset.
const liveFile = "config-live.json"

// keyCheckpoint is gsyncd's config key checkpoint: setting it sets the
// checkpoint (kept in <work-dir>/checkpoint, not in the live file);
// resetting it clears the checkpoint.
const keyCheckpoint = "checkpoint"

// configKeys lists what config get shows (gsyncd's names) and how to read
// each from the running master.
func (m *monitor) configKeys() map[string]func() string {
	c := m.cfg
	str := func(s string) func() string { return func() string { return s } }
	b := func(v bool) func() string { return str(strconv.FormatBool(v)) }
	i := func(v int64) func() string { return str(strconv.FormatInt(v, 10)) }
	d := func(v time.Duration) func() string { return str(v.String()) }
	return map[string]func() string{
		"source": str(c.Source), "gluster-volume": str(c.GlusterVolume), "volfile-server": str(c.VolfileServer),
		"gluster-command": str(c.GlusterCLI), "work-dir": str(c.WorkDir), "slave": str(c.Slave),
		"insecure": b(c.Insecure), "sync-jobs": i(int64(c.SyncJobs)),
		"change-interval":      func() string { return m.changeInterval().String() },
		"change-detector":      str(c.ChangeDetector),
		"rollover-time":        d(c.RolloverTime),
		"changelog-batch-size": i(int64(c.ChangelogBatchSize)),
		"ignore-deletes":       b(c.IgnoreDeletes), "sync-xattrs": b(c.SyncXattrs), "sync-acls": b(c.SyncACLs),
		"rsync-command": str(c.RsyncPath), "rsync-options": str(strings.Join(c.RsyncOptions, " ")),
		"entry-batch": i(int64(c.EntryBatch)), "small-file-size": i(c.SmallFileSize),
		"oneshot": b(c.Oneshot), "oneshot-timeout": d(c.OneshotTimeout), "lease": d(c.Lease),
		"status-listen": str(c.StatusListen), "metrics-listen": str(c.MetricsListen),
		"status-tls-cert": str(c.StatusTLS.Cert), "status-tls-key": str(c.StatusTLS.Key), "status-tls-ca": str(c.StatusTLS.CA),
		"status-allowed-clients": str(strings.Join(c.StatusAllowedClients, ",")), "status-insecure": b(c.StatusInsecure),
		"gluster-events": str(c.GlusterEvents), "events-webhook": str(events.Redact(c.EventsWebhook)),
		"max-delete":        func() string { return m.deleteLimit().String() },
		"bandwidth-limit":   func() string { return m.bw.Rate().String() },
		"accept-new-source": b(c.AcceptNewSource), "dry-run": b(c.DryRun),
		"audit-interval": d(c.AuditInterval), "audit-content-interval": d(c.AuditContentInterval),
		"audit-rate": str(c.AuditRate.String()),
		"log-level": func() string {
			if c.LogLevel == nil {
				return ""
			}
			return strings.ToLower(c.LogLevel.Level().String())
		},
		keyCheckpoint: func() string {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.cp.Time.IsZero() {
				return ""
			}
			return m.cp.Time.Format(time.RFC3339Nano)
		},
	}
}

// liveKeys are the keys safe to change while the master runs.
var liveKeys = []string{"bandwidth-limit", "change-interval", keyCheckpoint, "log-level", "max-delete"}

// source says where key's value comes from now.
func (m *monitor) source(key string) string {
	if key == keyCheckpoint {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.cp.Time.IsZero() {
			return sourceDefault
		}
		return sourceLive
	}
	m.liveMu.Lock()
	_, live := m.live[key]
	m.liveMu.Unlock()
	if live {
		return sourceLive
	}
	if s := m.cfg.Sources[key]; s != "" {
		return s
	}
	return sourceDefault
}

func (m *monitor) value(key string, get func() string) configValue {
	return configValue{Key: key, Value: get(), Live: slices.Contains(liveKeys, key), Source: m.source(key)}
}

// getConfig returns key's value, or every key's when key is "".
func (m *monitor) getConfig(key string) ([]configValue, error) {
	keys := m.configKeys()
	if key != "" {
		get, ok := keys[key]
		if !ok {
			return nil, fmt.Errorf("%w %q", errUnknownKey, key)
		}
		return []configValue{m.value(key, get)}, nil
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]configValue, 0, len(names))
	for _, k := range names {
		out = append(out, m.value(k, keys[k]))
	}
	return out, nil
}

// liveSetting is a live key's parsed value, ready to apply.
type liveSetting struct {
	key      string
	interval time.Duration
	limit    DeleteLimit
	rate     bwlimit.Rate
	level    slog.Level
}

// parseLive checks value for the live key key (not checkpoint).
func (m *monitor) parseLive(key, value string) (liveSetting, error) {
	ls := liveSetting{key: key}
	if _, ok := m.configKeys()[key]; !ok {
		return ls, fmt.Errorf("%w %q", errUnknownKey, key)
	}
	switch key {
	case "change-interval":
		d, err := duration.Parse(value)
		if err != nil || d < 100*time.Millisecond {
			return ls, fmt.Errorf("%w: change-interval: %q is not a duration of at least 100ms (seconds, e.g. 5, or a duration, e.g. 1m30s)", errBadValue, value)
		}
		ls.interval = d
	case "max-delete":
		l, err := ParseDeleteLimit(value)
		if err != nil {
			return ls, fmt.Errorf("%w: %v", errBadValue, err)
		}
		ls.limit = l
	case "bandwidth-limit":
		r, err := bwlimit.Parse(value)
		if err != nil {
			return ls, fmt.Errorf("%w: %v", errBadValue, err)
		}
		ls.rate = r
	case "log-level":
		if m.cfg.LogLevel == nil {
			return ls, fmt.Errorf("log-level %w: this master's logger has a fixed level", errNotLive)
		}
		if err := ls.level.UnmarshalText([]byte(value)); err != nil {
			return ls, fmt.Errorf("%w: log-level: %q is not one of debug, info, warn, error", errBadValue, value)
		}
	default:
		return ls, fmt.Errorf("%s %w: change it in the configuration and restart georep-master (keys changeable live: %s)",
			key, errNotLive, strings.Join(liveKeys, ", "))
	}
	return ls, nil
}

// apply makes ls the running value.
func (m *monitor) apply(ls liveSetting) {
	switch ls.key {
	case "change-interval":
		m.interval.Store(int64(ls.interval))
		m.nudgeAll() // the wait in progress uses the old interval
	case "max-delete":
		m.maxDelete.Store(&ls.limit)
		m.nudgeAll() // a worker halted by the guard tries again at once
	case "bandwidth-limit":
		m.bw.SetRate(ls.rate) // every connection to the slave, the relayed tunnels' too
	case "log-level":
		m.cfg.LogLevel.Set(ls.level)
	}
}

func (m *monitor) nudgeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.workers {
		e.w.nudge(false)
	}
}

// setConfig changes a live key, and keeps the change in the work dir's
// live file (written before the change applies: what runs is what a
// restart finds). The operator's configuration file stays as it is.
func (m *monitor) setConfig(key, value string) (configValue, error) {
	if key == keyCheckpoint {
		t, err := parseCheckpointTime(value, m.now())
		if err != nil {
			return configValue{}, fmt.Errorf("%w: %v", errBadValue, err)
		}
		if _, err := m.setCheckpoint(t); err != nil {
			return configValue{}, err
		}
		return m.value(key, m.configKeys()[key]), nil
	}
	ls, err := m.parseLive(key, value)
	if err != nil {
		return configValue{}, err
	}
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	next := cloneLive(m.live)
	next[key] = value
	if err := writeJSON(m.wd.path(liveFile), next); err != nil {
		return configValue{}, fmt.Errorf("keeping %s in the work dir: %w", key, err)
	}
	m.live = next
	m.apply(ls)
	m.log.Info("configuration changed", "key", key, "value", value, "kept_in", m.wd.path(liveFile))
	return configValue{Key: key, Value: m.configKeys()[key](), Live: true, Source: sourceLive}, nil
}

// resetConfig undoes config set of key: it leaves the live file, and its
// value is again the one the master started with. Resetting checkpoint
// clears the checkpoint.
func (m *monitor) resetConfig(key string) (configValue, error) {
	if key == keyCheckpoint {
		if err := m.clearCheckpoint(); err != nil {
			return configValue{}, err
		}
		return m.value(key, m.configKeys()[key]), nil
	}
	if _, ok := m.configKeys()[key]; !ok {
		return configValue{}, fmt.Errorf("%w %q", errUnknownKey, key)
	}
	if !slices.Contains(liveKeys, key) {
		return configValue{}, fmt.Errorf("%s %w: only a key changed with config set can be reset (keys changeable live: %s)",
			key, errNotLive, strings.Join(liveKeys, ", "))
	}
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	if _, ok := m.live[key]; ok {
		next := cloneLive(m.live)
		delete(next, key)
		if err := writeJSON(m.wd.path(liveFile), next); err != nil {
			return configValue{}, fmt.Errorf("removing %s from the work dir's live configuration: %w", key, err)
		}
		m.live = next
	}
	c := m.cfg
	ls := liveSetting{key: key, interval: c.ChangeInterval, limit: c.MaxDelete, rate: c.BandwidthLimit, level: m.startLevel}
	if key == "log-level" && c.LogLevel == nil {
		return configValue{}, fmt.Errorf("log-level %w: this master's logger has a fixed level", errNotLive)
	}
	m.apply(ls)
	src := c.Sources[key]
	if src == "" {
		src = sourceDefault
	}
	v := configValue{Key: key, Value: m.configKeys()[key](), Live: true, Source: src}
	m.log.Info("configuration reset", "key", key, "value", v.Value, "source", src)
	return v, nil
}

// loadLive reads the live file and applies what it holds over the
// configuration the master started with, logging each key. A file that
// does not read, or holds a key or value that is not a live one, stops
// the start (ErrConfig): its keys are the operator's latest word (a
// max-delete among them), not to be dropped silently.
func (m *monitor) loadLive() error {
	path := m.wd.path(liveFile)
	live, err := readLive(path)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(live))
	for k := range live {
		names = append(names, k)
	}
	slices.Sort(names)
	var sets []liveSetting
	for _, k := range names {
		ls, err := m.parseLive(k, live[k])
		if k == keyCheckpoint || errors.Is(err, errUnknownKey) {
			err = fmt.Errorf("%w %q", errUnknownKey, k)
		}
		if err != nil {
			return fmt.Errorf("%w: %s (the keys changed with georepctl config set): %v; mend it or remove the key", ErrConfig, path, err)
		}
		sets = append(sets, ls)
	}
	keys := m.configKeys()
	for _, ls := range sets {
		was, from := keys[ls.key](), m.cfg.Sources[ls.key]
		if from == "" {
			from = sourceDefault
		}
		m.apply(ls)
		m.log.Info("configuration kept from georepctl config set (georepctl config reset KEY returns to the configuration's)",
			"key", ls.key, "value", live[ls.key], "instead_of", was, "from", from, "file", path)
	}
	m.live = live
	return nil
}

// readLive reads the live file at path (none: nil).
func readLive(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	var live map[string]string
	if err := json.Unmarshal(b, &live); err != nil {
		return nil, fmt.Errorf("%w: %s (the keys changed with georepctl config set): %v; mend it or remove it", ErrConfig, path, err)
	}
	return live, nil
}

// liveDeleteLimit is max-delete as the live file in workDir has it, for a
// dry run, which runs no monitor: it predicts what the daemon's guard does.
func liveDeleteLimit(workDir string, l DeleteLimit) (DeleteLimit, error) {
	path := filepath.Join(workDir, liveFile)
	live, err := readLive(path)
	if err != nil {
		return l, err
	}
	v, ok := live["max-delete"]
	if !ok {
		return l, nil
	}
	l, err = ParseDeleteLimit(v)
	if err != nil {
		return l, fmt.Errorf("%w: %s: %v; mend it or remove the key", ErrConfig, path, err)
	}
	return l, nil
}

func cloneLive(live map[string]string) map[string]string {
	out := make(map[string]string, len(live)+1)
	for k, v := range live {
		out[k] = v
	}
	return out
}

// parseCheckpointTime reads a checkpoint as gsyncd's config key takes it:
// now, RFC 3339, or seconds since the epoch.
func parseCheckpointTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("checkpoint: %q is not now, an RFC 3339 time (2026-01-02T15:04:05Z) or seconds since the epoch", s)
}
