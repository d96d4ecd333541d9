package master

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/georep/georep/rpc/bwlimit"
	"github.com/georep/georep/rpc/duration"
)

// Errors of the live configuration.
var (
	errUnknownKey = errors.New("unknown key")
	errNotLive    = errors.New("cannot be changed while the master runs")
	errBadValue   = errors.New("invalid value")
)

// configValue is one configuration key of the running master.
type configValue struct {
	Key, Value string
	Live       bool // SetConfig may change it
}

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
		"max-delete":        func() string { return m.deleteLimit().String() },
		"bandwidth-limit":   func() string { return m.bw.Rate().String() },
		"accept-new-source": b(c.AcceptNewSource), "dry-run": b(c.DryRun),
		"log-level": func() string {
			if c.LogLevel == nil {
				return ""
			}
			return strings.ToLower(c.LogLevel.Level().String())
		},
	}
}

// liveKeys are the keys safe to change while the master runs.
var liveKeys = []string{"bandwidth-limit", "change-interval", "log-level", "max-delete"}

// getConfig returns key's value, or every key's when key is "".
func (m *monitor) getConfig(key string) ([]configValue, error) {
	keys := m.configKeys()
	if key != "" {
		get, ok := keys[key]
		if !ok {
			return nil, fmt.Errorf("%w %q", errUnknownKey, key)
		}
		return []configValue{{Key: key, Value: get(), Live: slices.Contains(liveKeys, key)}}, nil
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]configValue, 0, len(names))
	for _, k := range names {
		out = append(out, configValue{Key: k, Value: keys[k](), Live: slices.Contains(liveKeys, k)})
	}
	return out, nil
}

// setConfig changes a live key. The change lasts until the master stops:
// the configuration file is the operator's, and stays as it is.
func (m *monitor) setConfig(key, value string) (configValue, error) {
	if _, ok := m.configKeys()[key]; !ok {
		return configValue{}, fmt.Errorf("%w %q", errUnknownKey, key)
	}
	switch key {
	case "change-interval":
		d, err := duration.Parse(value)
		if err != nil || d < 100*time.Millisecond {
			return configValue{}, fmt.Errorf("%w: change-interval: %q is not a duration of at least 100ms (seconds, e.g. 5, or a duration, e.g. 1m30s)", errBadValue, value)
		}
		m.interval.Store(int64(d))
		m.mu.Lock()
		for _, e := range m.workers {
			e.w.nudge(false) // the wait in progress uses the old interval
		}
		m.mu.Unlock()
	case "max-delete":
		l, err := ParseDeleteLimit(value)
		if err != nil {
			return configValue{}, fmt.Errorf("%w: %v", errBadValue, err)
		}
		m.maxDelete.Store(&l)
		m.mu.Lock()
		for _, e := range m.workers {
			e.w.nudge(false) // a worker halted by the guard tries again at once
		}
		m.mu.Unlock()
	case "bandwidth-limit":
		r, err := bwlimit.Parse(value)
		if err != nil {
			return configValue{}, fmt.Errorf("%w: %v", errBadValue, err)
		}
		m.bw.SetRate(r) // every connection to the slave, the relayed tunnels' too
	case "log-level":
		if m.cfg.LogLevel == nil {
			return configValue{}, fmt.Errorf("log-level %w: this master's logger has a fixed level", errNotLive)
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(value)); err != nil {
			return configValue{}, fmt.Errorf("%w: log-level: %q is not one of debug, info, warn, error", errBadValue, value)
		}
		m.cfg.LogLevel.Set(l)
	default:
		return configValue{}, fmt.Errorf("%s %w: change it in the configuration and restart georep-master (keys changeable live: %s)",
			key, errNotLive, strings.Join(liveKeys, ", "))
	}
	m.log.Info("configuration changed", "key", key, "value", value)
	v, _ := m.getConfig(key)
	return v[0], nil
}
