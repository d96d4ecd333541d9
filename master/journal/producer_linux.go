package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
)

const (
	// DefaultRollover is the rollover time when Config.Rollover is 0.
	DefaultRollover = 15 * time.Second
	// MinRollover is the shortest rollover time Start accepts.
	MinRollover = 100 * time.Millisecond
)

// ErrUnsupported is wrapped by Start's error, with the concrete reason, when
// fanotify with file-handle reporting cannot watch the source: not
// privileged (EPERM), a kernel without it (EINVAL, ENOSYS), a filesystem
// without file handles or fsid (EOPNOTSUPP, ENODEV, EXDEV). The caller falls
// back to periodic hybrid crawls.
var ErrUnsupported = errors.New("fanotify journal unsupported")

// Config for Start.
type Config struct {
	Source   string        // the directory being replicated; made absolute, symbolic links resolved
	Dir      string        // journal directory (<work-dir>/journal), created 0700 if missing
	Rollover time.Duration // a journal file with records is closed and indexed after this long; 0 means DefaultRollover
	// Exclude lists paths whose events are dropped: the master's work dir
	// when it lives on the source's filesystem, or the journal would record
	// its own writes. Dir is always excluded.
	Exclude []string
	Log     *slog.Logger

	// hold, in tests, delays the first read of the fanotify descriptor
	// until it is closed, so that the kernel's queue can overflow.
	hold <-chan struct{}
}

const (
	// baseMask is what the producer watches. FAN_EVENT_ON_CHILD makes the
	// kernel report events on files with their parent and name.
	baseMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
		unix.FAN_MODIFY | unix.FAN_ATTRIB | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF |
		unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD
	entryMask   = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF
	dataMask    = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE
	dirMoveMask = unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF

	initFlags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME

	readBufSize = 256 << 10
	// maxDrain bounds the reads that collect the events still queued when
	// the producer stops: a busy filesystem never runs dry.
	maxDrain = 64
)

// Producer writes the journal of one generation. Its methods may be called
// from any goroutine.
type Producer struct {
	gen    int64
	log    *slog.Logger
	notify chan struct{}
	stopc  chan struct{}
	done   chan struct{}
	once   sync.Once
	unhook func() bool // releases the context.AfterFunc

	mu  sync.Mutex
	err error

	// Owned by the run goroutine.
	fan     *os.File // the fanotify descriptor, non-blocking, in the runtime poller
	fanFD   int
	mountFD int
	w       *writer
	filter  *filter
	hold    <-chan struct{}
	buf     []byte
	recs    []Record
}

// Start watches cfg.Source with fanotify and writes its journal into cfg.Dir
// until ctx is done or Close is called. Its error wraps ErrUnsupported when
// fanotify cannot be used here.
func Start(ctx context.Context, cfg Config) (*Producer, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Source == "":
		return nil, errors.New("journal: no source")
	case cfg.Dir == "":
		return nil, errors.New("journal: no journal dir")
	case cfg.Rollover == 0:
		cfg.Rollover = DefaultRollover
	case cfg.Rollover < MinRollover:
		return nil, fmt.Errorf("journal: rollover %v shorter than %v", cfg.Rollover, MinRollover)
	}
	src, err := canonical(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("journal: source: %w", err)
	}
	mountFD, err := openSource(src)
	if err != nil {
		return nil, err
	}
	fanFD, closeWrite, err := initFanotify(src)
	if err != nil {
		unix.Close(mountFD)
		return nil, err
	}
	p, err := newProducer(cfg, src, mountFD, fanFD, log)
	if err != nil {
		unix.Close(fanFD)
		unix.Close(mountFD)
		return nil, err
	}
	log.Info("journal started", "source", src, "dir", cfg.Dir, "gen", p.gen,
		"rollover", cfg.Rollover, "close_write", closeWrite)
	go p.run()
	p.unhook = context.AfterFunc(ctx, p.stop)
	return p, nil
}

// openSource opens src as the mount descriptor and checks that the
// filesystem's handles can be encoded and opened again.
func openSource(src string) (int, error) {
	var fd int
	err := eintr.Retry(func() (err error) {
		fd, err = openMountFD(src)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("journal: open source %s: %w", src, err)
	}
	fh, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		unix.Close(fd)
		if unsupportedErr(err) {
			return -1, fmt.Errorf("%w: file handles on the filesystem of %s: name_to_handle_at: %w", ErrUnsupported, src, err)
		}
		return -1, fmt.Errorf("journal: source %s: name_to_handle_at: %w", src, err)
	}
	h := Handle{Type: fh.Type(), Bytes: fh.Bytes()}
	hfd, path, err := openHandle(fd, h, unix.O_PATH)
	if err != nil {
		unix.Close(fd)
		if unsupportedErr(err) || errors.Is(err, ErrStale) {
			return -1, fmt.Errorf("%w: file handles on the filesystem of %s: %w", ErrUnsupported, src, err)
		}
		return -1, fmt.Errorf("journal: source %s: %w", src, err)
	}
	unix.Close(hfd)
	if path != src {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: the handle of %s opens %s", ErrUnsupported, src, path)
	}
	return fd, nil
}

// initFanotify creates the fanotify group and marks the filesystem of src.
// FAN_CLOSE_WRITE is asked for and left out if the kernel refuses it.
func initFanotify(src string) (fd int, closeWrite bool, err error) {
	fd, err = unix.FanotifyInit(initFlags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		if unsupportedErr(err) {
			return -1, false, fmt.Errorf("%w: fanotify_init(FAN_REPORT_DFID_NAME): %w", ErrUnsupported, err)
		}
		return -1, false, fmt.Errorf("journal: fanotify_init: %w", err)
	}
	mark := func(mask uint64) error {
		return eintr.Retry(func() error {
			return unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, src)
		})
	}
	closeWrite = true
	err = mark(baseMask | unix.FAN_CLOSE_WRITE)
	if errors.Is(err, unix.EINVAL) {
		closeWrite = false
		err = mark(baseMask)
	}
	if err != nil {
		unix.Close(fd)
		if unsupportedErr(err) {
			return -1, false, fmt.Errorf("%w: fanotify_mark(FAN_MARK_FILESYSTEM) %s: %w", ErrUnsupported, src, err)
		}
		return -1, false, fmt.Errorf("journal: fanotify_mark %s: %w", src, err)
	}
	return fd, closeWrite, nil
}

func unsupportedErr(err error) bool {
	for _, e := range []error{unix.EPERM, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.ENODEV, unix.EXDEV} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func newProducer(cfg Config, src string, mountFD, fanFD int, log *slog.Logger) (*Producer, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	dir, err := canonical(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	if within(src, dir) {
		return nil, fmt.Errorf("journal: journal dir %s holds the source %s", dir, src)
	}
	exclude := []string{dir}
	for _, ex := range cfg.Exclude {
		c, err := canonical(ex)
		if err != nil {
			// Not there (yet): its events name it as it is spelled.
			if c, err = filepath.Abs(ex); err != nil {
				return nil, fmt.Errorf("journal: exclude %s: %w", ex, err)
			}
		}
		exclude = append(exclude, c)
	}
	w, err := newWriter(dir, cfg.Rollover, time.Now())
	if err != nil {
		return nil, err
	}
	return &Producer{
		gen:     w.gen,
		log:     log,
		notify:  make(chan struct{}, 1),
		stopc:   make(chan struct{}),
		done:    make(chan struct{}),
		fan:     os.NewFile(uintptr(fanFD), "fanotify"),
		fanFD:   fanFD,
		mountFD: mountFD,
		w:       w,
		filter:  newFilter(mountFD, src, exclude, log),
		hold:    cfg.hold,
		buf:     make([]byte, readBufSize),
	}, nil
}

// Generation identifies this producer run: the N of its HTIME.N and
// JOURNAL.N.* files, the Gen of a Cursor reading them.
func (p *Producer) Generation() int64 { return p.gen }

// Notify receives a signal after each write of new records, and when the
// producer stops (then Done is closed and Err says whether it failed). One
// signal may stand for several writes.
func (p *Producer) Notify() <-chan struct{} { return p.notify }

// Done is closed when the producer has stopped.
func (p *Producer) Done() <-chan struct{} { return p.done }

// Err is non-nil once the producer stopped on an error (reading fanotify,
// writing the journal): the journal of this generation is incomplete and
// the consumer must fall back to a full crawl.
func (p *Producer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close stops the producer, writes the events still queued, closes and
// indexes the current file and ends the index. It returns Err.
func (p *Producer) Close() error {
	p.stop()
	<-p.done
	p.unhook()
	return p.Err()
}

// stop asks the run goroutine to finish and wakes its read.
func (p *Producer) stop() {
	p.once.Do(func() {
		close(p.stopc)
		_ = p.fan.SetReadDeadline(time.Now()) // fails only once run closed it
	})
}

func (p *Producer) signal() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *Producer) run() {
	defer close(p.done)
	defer p.signal()
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-p.stopc:
		}
	}
	for {
		// The deadline is set before stopc is checked: stop closes stopc
		// before it moves the deadline, so a stop is never missed.
		if err := p.fan.SetReadDeadline(p.w.due); err != nil {
			p.fail(fmt.Errorf("journal: fanotify deadline: %w", err))
			return
		}
		select {
		case <-p.stopc:
			p.finish()
			return
		default:
		}
		n, rerr := p.fan.Read(p.buf)
		if n > 0 {
			if err := p.flush(p.buf[:n]); err != nil {
				p.fail(err)
				return
			}
		}
		if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			p.fail(fmt.Errorf("journal: read fanotify: %w", rerr))
			return
		}
		seq := p.w.seq
		if err := p.w.tick(time.Now()); err != nil {
			p.fail(err)
			return
		}
		if p.w.seq != seq {
			p.log.Debug("journal rollover", "gen", p.gen, "seq", seq)
		}
	}
}

// flush turns the events of one read into records and appends them with one
// write.
func (p *Producer) flush(b []byte) error {
	evs, perr := parseEvents(b)
	p.recs = p.recs[:0]
	for _, ev := range evs {
		if ev.fd >= 0 {
			unix.Close(int(ev.fd)) // not expected of a group reporting handles
		}
		if ev.mask&unix.FAN_Q_OVERFLOW != 0 {
			p.log.Warn("journal: fanotify queue overflow, events lost", "gen", p.gen)
			p.add(Record{Kind: Overflow})
			continue
		}
		if !ev.hasDir {
			continue
		}
		if ev.mask&unix.FAN_ONDIR != 0 && ev.mask&dirMoveMask != 0 {
			p.filter.reset() // directories may have moved in or out
		}
		if !p.filter.keep(ev.dir) {
			continue
		}
		if ev.mask&entryMask != 0 {
			p.add(Record{Kind: Entry, Dir: ev.dir, Name: ev.name})
		}
		if ev.mask&dataMask != 0 {
			p.add(Record{Kind: Data, Dir: ev.dir, Name: ev.name})
		}
		if ev.mask&unix.FAN_ATTRIB != 0 {
			p.add(Record{Kind: Meta, Dir: ev.dir, Name: ev.name})
		}
	}
	if err := p.w.append(p.recs); err != nil {
		return err
	}
	if len(p.recs) > 0 {
		p.signal()
	}
	if perr != nil {
		return fmt.Errorf("journal: %w", perr)
	}
	return nil
}

// add appends r unless it repeats the previous record.
func (p *Producer) add(r Record) {
	if n := len(p.recs); n > 0 {
		last := p.recs[n-1]
		if last.Kind == r.Kind && last.Name == r.Name && last.Dir.Type == r.Dir.Type && bytes.Equal(last.Dir.Bytes, r.Dir.Bytes) {
			return
		}
	}
	p.recs = append(p.recs, r)
}

// finish writes what is still queued and closes the generation.
func (p *Producer) finish() {
	var err error
	for range maxDrain {
		n, rerr := unix.Read(p.fanFD, p.buf)
		if errors.Is(rerr, unix.EINTR) {
			continue
		}
		if rerr != nil || n <= 0 {
			if rerr != nil && !errors.Is(rerr, unix.EAGAIN) {
				err = fmt.Errorf("journal: read fanotify: %w", rerr)
			}
			break
		}
		if err = p.flush(p.buf[:n]); err != nil {
			break
		}
	}
	if err != nil {
		p.fail(err)
		return
	}
	err = p.w.close(time.Now())
	p.release()
	if err != nil {
		p.setErr(err)
		return
	}
	p.log.Info("journal stopped", "gen", p.gen)
}

// fail stops the producer on err, leaving the generation without "end".
func (p *Producer) fail(err error) {
	p.w.abort()
	p.release()
	p.setErr(err)
}

func (p *Producer) setErr(err error) {
	p.log.Error("journal failed", "gen", p.gen, "err", err)
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *Producer) release() {
	p.fan.Close()
	unix.Close(p.mountFD)
}
