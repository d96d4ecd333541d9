package slave

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/rawcodec"
	"github.com/georep/georep/rpc/tail"
)

// The rsync tunnel server: the slave half of "Data: rsync over gRPC" in
// ARCHITECTURE.md (gsyncd's resource.py rsync, with the slave side of ssh
// replaced by the Rsync stream).
//
// The master's rsync asks its -e transport to run, on the slave,
//
//	rsync --server -ogtpIRSe.LsfxCIvu --numeric-ids --existing --inplace --no-implied-dirs . .
//
// (observed with rsync 3.5.0 for the options master/syncer uses; -X and -A
// add X and A to the cluster). The slave never runs that list as it is: it
// keeps only options known to be safe for a receiver that may update, but
// never create, files beneath its data directory, adds the options it insists
// on, and replaces the path with its own data directory.

// rsyncChunk is the largest stdout payload of one RsyncResponse.
const rsyncChunk = 256 << 10

// stderrTail is how much of rsync's stderr the slave keeps for its log.
const stderrTail = 8 << 10

// rsyncShortOpts are the single-letter options a receiving rsync --server may
// get in its option cluster. Everything else is refused, notably:
//
//	l  symlinks: the master sends file data only (--copy-links), and a
//	   received symlink could point anywhere
//	L k K  copy-links, copy-dirlinks, keep-dirlinks: change how the receiver
//	   follows the symlinks of the gfid index
//	H  hard links: the receiver would link inodes the entry ops did not
//	D  devices and specials: never data
//	s  secluded args: the real arguments would arrive over the protocol,
//	   past this validation
//	X  xattrs: a receiving rsync -X running as root removes every xattr the
//	   sender did not list, trusted.georep.gfid included (observed with
//	   rsync 3.5.0); and through the master's staging symlinks it would only
//	   ever send the symlink's own (empty) list. User xattrs go by MetaOps.
//	d r  directories: the receiver could replace a file's index entry with
//	   a directory (the master never sends directories)
//	b y T C m B  backups, fuzzy basis, temp dir, cvs-exclude, pruning, and
//	   anything else that reads or writes outside the named files
const rsyncShortOpts = "ogtpRSIxAzvncOJWEUNqiuh8"

// rsyncLongFlags are the long options without a value that a receiver may
// get. Deletions (--delete*, --remove-source-files, --ignore-errors), paths
// (--temp-dir, --partial-dir, --backup-dir, --compare-dest, --copy-dest,
// --link-dest, --log-file, --files-from, --exclude-from, --rsync-path),
// --fake-super (it would keep ownership in xattrs instead of applying it) and
// everything not listed are refused.
var rsyncLongFlags = map[string]bool{
	"--inplace":             true,
	"--existing":            true,
	"--ignore-non-existing": true,
	"--numeric-ids":         true,
	"--no-implied-dirs":     true,
	"--from0":               true,
	"--super":               true,
	"--fsync":               true,
	"--preallocate":         true,
	"--open-noatime":        true,
	"--partial":             true,
	"--munge-links":         true,
	"--no-r":                true,
	"--no-W":                true,
	"--size-only":           true,
	"--ignore-times":        true,
	"--omit-dir-times":      true,
	"--omit-link-times":     true,
	"--sparse":              true,
	"--atimes":              true,
	"--crtimes":             true,
}

// rsyncLongValues are the long options with a value ("--name=value") that a
// receiver may get, with a check of the value.
var rsyncLongValues = map[string]func(string) bool{
	"--compress-level":  isUint,
	"--timeout":         isUint,
	"--block-size":      isUint,
	"--max-size":        isUint,
	"--min-size":        isUint,
	"--bwlimit":         isUint,
	"--modify-window":   func(v string) bool { return isUint(strings.TrimPrefix(v, "-")) },
	"--checksum-choice": isWordList,
	"--compress-choice": isWordList,
}

// rsyncForced are the options the slave always adds: update in place the
// inode the entry ops created (every hardlink of the gfid shares it), never
// create one, and take ids as numbers.
var rsyncForced = []string{"--existing", "--inplace", "--numeric-ids", "--munge-links"}

// ValidateRsyncArgs checks the remote command that the master's rsync asked
// its -e transport to run and returns the command the slave runs instead:
//
//	rsync --server <the validated options> <forced options> . <dataDir>/
//
// args must be "rsync" "--server" (receiver mode only), then options from an
// allowlist, then "." and exactly one path. The path is ignored: the receiver
// always writes beneath dataDir. The error names the offending argument.
func ValidateRsyncArgs(args []string, dataDir string) ([]string, error) {
	if !filepath.IsAbs(dataDir) {
		return nil, fmt.Errorf("rsync data directory %q is not absolute", dataDir)
	}
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("rsync argument %d %q contains a NUL byte", i, a)
		}
	}
	if len(args) < 2 || args[0] != "rsync" || args[1] != "--server" {
		return nil, fmt.Errorf("remote command %q is not \"rsync --server ...\"", truncateArgs(args))
	}
	out := []string{"rsync", "--server"}
	have := make(map[string]bool)
	i := 2
	for ; i < len(args) && args[i] != "."; i++ {
		a := args[i]
		if err := checkRsyncOption(a); err != nil {
			return nil, err
		}
		have[a] = true
		out = append(out, a)
	}
	if i == len(args) {
		return nil, errors.New("rsync arguments lack the \".\" that ends the options")
	}
	paths := args[i+1:]
	for _, p := range paths {
		if strings.HasPrefix(p, "-") {
			return nil, fmt.Errorf("rsync argument %q: options must come before \".\"", p)
		}
	}
	switch {
	case len(paths) == 0:
		return nil, errors.New("rsync arguments name no destination path")
	case len(paths) > 1:
		return nil, fmt.Errorf("rsync argument %q: exactly one destination path is allowed", paths[1])
	case paths[0] == "":
		return nil, errors.New("rsync destination path is empty")
	}
	for _, f := range rsyncForced {
		if !have[f] {
			out = append(out, f)
		}
	}
	return append(out, ".", strings.TrimRight(dataDir, "/")+"/"), nil
}

func checkRsyncOption(a string) error {
	switch {
	case a == "--sender":
		return fmt.Errorf("rsync argument %q: the slave only receives", a)
	case strings.HasPrefix(a, "--"):
		if rsyncLongFlags[a] {
			return nil
		}
		if name, val, ok := strings.Cut(a, "="); ok {
			if check := rsyncLongValues[name]; check != nil {
				if !check(val) {
					return fmt.Errorf("rsync argument %q: bad value", a)
				}
				return nil
			}
		}
		return fmt.Errorf("rsync argument %q: option not allowed", a)
	case strings.HasPrefix(a, "-B") && len(a) > 2:
		if !isUint(a[2:]) {
			return fmt.Errorf("rsync argument %q: bad block size", a)
		}
		return nil
	case strings.HasPrefix(a, "-") && len(a) > 1:
		for j := 1; j < len(a); j++ {
			c := a[j]
			if c == 'e' {
				// The rest is the client's capability string, e.g.
				// ".iLsfxCIvu" (a sub-protocol digit or '.', then letters).
				if !isCapabilities(a[j+1:]) {
					return fmt.Errorf("rsync argument %q: bad -e capability string", a)
				}
				return nil
			}
			if strings.IndexByte(rsyncShortOpts, c) < 0 {
				return fmt.Errorf("rsync argument %q: option -%c not allowed", a, c)
			}
		}
		return nil
	default:
		return fmt.Errorf("rsync argument %q: not an option (paths come after \".\")", a)
	}
}

func isUint(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isWordList(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ',' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}

func isCapabilities(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

func truncateArgs(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return s
}

// ServeRsync serves one Rsync stream: the first message must be Start, whose
// arguments ValidateRsyncArgs checks; then it runs rsyncPath (looked up in
// PATH when it has no slash) in dataDir, pumps Stdin messages into rsync's
// stdin (closed on CloseStdin or when the client half-closes), sends rsync's
// stdout and stderr back, and finishes with Exit carrying rsync's exit code.
// A non-zero exit is response data, not an error.
//
// Errors are gRPC status errors: InvalidArgument for protocol violations and
// refused arguments, FailedPrecondition when rsync is not installed. The child
// and all its processes are killed and waited for on every path, including a
// client that goes away mid-transfer. After Exit the handler waits briefly
// for the client to half-close, so that no goroutine outlives it.
func ServeRsync(stream slavev1.SlaveService_RsyncServer, dataDir, rsyncPath string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, argv, err := rsyncStart(stream, dataDir, rsyncPath, log)
	if err != nil {
		return err
	}
	r, err := startRsync(stream, bin, argv, dataDir, log)
	if err != nil {
		return err
	}
	r.pumps.Add(2)
	go r.pump(r.outR, func(b []byte) *slavev1.RsyncResponse {
		return &slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Stdout{Stdout: b}}
	}, nil)
	go r.pump(r.errR, func(b []byte) *slavev1.RsyncResponse {
		return &slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Stderr{Stderr: b}}
	}, &r.tail)
	// stream → stdin.
	go func() {
		err := recvStdin(stream, r.inW)
		if err != nil {
			r.fail(err)
		}
		r.recvDone <- err
	}()
	return r.finish(r.wait())
}

// rsyncStart reads the stream's Start message, validates its arguments and
// finds the rsync binary.
func rsyncStart(stream slavev1.SlaveService_RsyncServer, dataDir, rsyncPath string, log *slog.Logger) (bin string, argv []string, err error) {
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, status.Error(codes.InvalidArgument, "rsync stream closed before Start")
		}
		return "", nil, err
	}
	start := first.GetStart()
	if start == nil {
		return "", nil, status.Error(codes.InvalidArgument, "the first rsync message must be Start")
	}
	argv, err = ValidateRsyncArgs(start.GetArgs(), dataDir)
	if err != nil {
		log.Warn("rsync refused", "args", start.GetArgs(), "err", err)
		return "", nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	bin, err = exec.LookPath(rsyncPath)
	if err != nil {
		log.Error("rsync not found", "rsync_path", rsyncPath, "err", err)
		return "", nil, status.Error(codes.FailedPrecondition, "rsync not found on the slave: install the Debian package rsync")
	}
	return bin, argv, nil
}

// rsyncRun is one rsync child of ServeRsync and the pumps between it and
// the stream.
type rsyncRun struct {
	stream slavev1.SlaveService_RsyncServer
	log    *slog.Logger
	cmd    *exec.Cmd
	inW    *os.File // rsync's stdin, written by recvStdin
	outR   *os.File // rsync's stdout
	errR   *os.File // rsync's stderr

	sendMu    sync.Mutex
	pumps     sync.WaitGroup
	streamErr error // first failure of the stream; guarded by errOnce
	errOnce   sync.Once
	tail      tail.Buffer // the end of rsync's stderr
	recvDone  chan error  // the receive goroutine's result
}

// startRsync starts rsync (argv, run as bin) in dataDir, in a process group
// of its own, its standard streams on pipes.
func startRsync(stream slavev1.SlaveService_RsyncServer, bin string, argv []string, dataDir string, log *slog.Logger) (*rsyncRun, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "rsync stdin pipe: %v", err)
	}
	growPipe(inW, log)
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, status.Errorf(codes.Internal, "rsync stdout pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, status.Errorf(codes.Internal, "rsync stderr pipe: %v", err)
	}

	cmd := exec.CommandContext(stream.Context(), bin, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = dataDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	// rsync --server forks a generator; a process group lets us kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, status.Errorf(codes.Internal, "start rsync: %v", err)
	}
	log.Debug("rsync started", "pid", cmd.Process.Pid, "args", argv)
	return &rsyncRun{stream: stream, log: log, cmd: cmd, inW: inW, outR: outR, errR: errR, tail: tail.Buffer{Max: stderrTail}, recvDone: make(chan error, 1)}, nil
}

func (r *rsyncRun) send(m *slavev1.RsyncResponse) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	return r.stream.Send(m)
}

// fail records the stream's first failure and kills rsync.
func (r *rsyncRun) fail(err error) {
	r.errOnce.Do(func() { r.streamErr = err })
	_ = killGroup(r.cmd.Process)
}

// pump sends what rsync writes on f (stdout or stderr) to the stream,
// keeping its end in keep when set. A failed Send stops the pump and kills
// rsync: the client is gone.
func (r *rsyncRun) pump(f *os.File, wrap func([]byte) *slavev1.RsyncResponse, keep *tail.Buffer) {
	defer r.pumps.Done()
	defer f.Close()
	buf := make([]byte, rsyncChunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if keep != nil {
				keep.Write(buf[:n])
			}
			if err := r.send(wrap(bytes.Clone(buf[:n]))); err != nil {
				r.fail(err)
				_, _ = io.Copy(io.Discard, f)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitRecv waits for the receive goroutine. It ends at the client's
// half-close or when the stream breaks; a client that neither closes nor
// breaks is cut off when the handler returns and the stream ends.
func (r *rsyncRun) waitRecv(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-r.recvDone:
		return err
	case <-t.C:
		r.log.Warn("rsync client did not close its side of the stream")
		return nil
	}
}

// wait waits for rsync and for the pumps to drain its output; it returns
// cmd.Wait's result.
func (r *rsyncRun) wait() error {
	waitErr := r.cmd.Wait()
	// Whatever rsync left behind in its group goes too; then the pipes see
	// EOF even if a straggler held them.
	_ = killGroup(r.cmd.Process)
	pumpsDone := make(chan struct{})
	go func() { r.pumps.Wait(); close(pumpsDone) }()
	select {
	case <-pumpsDone:
	case <-time.After(5 * time.Second):
		// Cannot happen unless a process escaped the group; unblock the reads.
		_ = r.outR.SetReadDeadline(time.Now())
		_ = r.errR.SetReadDeadline(time.Now())
		<-pumpsDone
	}
	return waitErr
}

// finish ends the stream after rsync exited with waitErr: Exit with its
// code, or the error of a stream the client broke or left.
func (r *rsyncRun) finish(waitErr error) error {
	ctx := r.stream.Context()
	code, msg := exitStatus(waitErr)
	r.errOnce.Do(func() {}) // streamErr is final from here on
	failed := r.streamErr
	if failed != nil || ctx.Err() != nil {
		// The client went away or broke the protocol: rsync was killed.
		_ = r.waitRecv(time.Second)
		r.log.Warn("rsync stream ended before rsync finished", "code", code, "err", errors.Join(failed, ctx.Err()))
		if failed != nil {
			if _, ok := status.FromError(failed); ok {
				return failed
			}
			return status.Errorf(codes.Unavailable, "rsync stream: %v", failed)
		}
		return status.FromContextError(ctx.Err()).Err()
	}
	if code != 0 {
		r.log.Warn("rsync failed", "code", code, "message", msg, "stderr", r.tail.String())
	} else {
		r.log.Debug("rsync done")
	}
	err := r.send(&slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Exit{Exit: &slavev1.RsyncExit{Code: int32(code), Message: msg}}})
	if err != nil {
		_ = r.waitRecv(time.Second)
		return err
	}
	// Let the client half-close so the receive goroutine ends before we
	// return.
	return r.waitRecv(10 * time.Second)
}

// stdinField is RsyncRequest's stdin field: rawcodec leaves a message of it
// alone in the frames gRPC read it into, which recvStdin writes to rsync.
var stdinField = protowire.Number((&slavev1.RsyncRequest{}).ProtoReflect().Descriptor().Fields().ByName("stdin").Number())

// recvStdin copies Stdin messages into w until CloseStdin or the client's
// half-close, then keeps draining until the client half-closes. It closes w.
//
// Stdin arrives as rawcodec.Bytes (whatever codec the master used: the
// bytes on the wire are the same), written from gRPC's buffers with
// writev; any other message as an RsyncRequest.
func recvStdin(stream slavev1.SlaveService_RsyncServer, w *os.File) error {
	open := true
	closed := false // the client sent CloseStdin
	closeIn := func() {
		if open {
			w.Close()
			open = false
		}
	}
	defer closeIn()
	// stdin writes data to rsync unless it is gone; false: data after
	// CloseStdin, a protocol violation.
	stdin := func(write func() error) bool {
		if closed {
			return false
		}
		if !open {
			// rsync exited: the client keeps sending until it sees the
			// exit status; drop the rest.
			return true
		}
		if err := write(); err != nil {
			// rsync exited (EPIPE); drop the rest.
			closeIn()
		}
		return true
	}
	m := new(slavev1.RsyncRequest)
	raw := rawcodec.Bytes{Field: stdinField, Other: m}
	for {
		proto.Reset(m)
		err := stream.RecvMsg(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if raw.Raw {
			data := raw.Data
			ok := stdin(func() error { return writeBuffers(w, data) })
			data.Free()
			if !ok {
				return status.Error(codes.InvalidArgument, "rsync stdin data after close_stdin")
			}
			continue
		}
		switch msg := m.GetMsg().(type) {
		case *slavev1.RsyncRequest_Stdin:
			if !stdin(func() error { _, err := w.Write(msg.Stdin); return err }) {
				return status.Error(codes.InvalidArgument, "rsync stdin data after close_stdin")
			}
		case *slavev1.RsyncRequest_CloseStdin:
			closed = true
			closeIn()
		case *slavev1.RsyncRequest_Start:
			closeIn()
			return status.Error(codes.InvalidArgument, "second rsync Start message")
		default:
			closeIn()
			return status.Error(codes.InvalidArgument, "empty rsync request")
		}
	}
}

// stdinPipeSize is the capacity asked for rsync's stdin pipe: a stdin
// message of the master's (256 KiB) and more fit at once, so that a write
// wakes rsync once a message, not once per 64 KiB (Linux's default; the
// most an unprivileged process may ask is fs.pipe-max-size, 1 MiB by
// default).
const stdinPipeSize = 1 << 20

// growPipe asks for stdinPipeSize on the pipe f; a pipe that stays smaller
// only costs more wake-ups.
func growPipe(f *os.File, log *slog.Logger) {
	rc, err := f.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			_, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, stdinPipeSize)
		})
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		log.Debug("rsync stdin pipe keeps its size", "err", err)
	}
}

// writeBuffers writes every byte of bs to f, several buffers a system call
// (writev), waiting in the runtime's poller while the pipe is full.
func writeBuffers(f *os.File, bs mem.BufferSlice) error {
	iov := make([][]byte, 0, len(bs))
	for _, b := range bs {
		if d := b.ReadOnlyData(); len(d) > 0 {
			iov = append(iov, d)
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("rsync stdin: %w", err)
	}
	for len(iov) > 0 {
		var werr error
		err := rc.Write(func(fd uintptr) bool {
			for {
				n, err := unix.Writev(int(fd), iov[:min(len(iov), maxIOV)])
				switch {
				case errors.Is(err, unix.EINTR):
					continue
				case errors.Is(err, unix.EAGAIN):
					return false // wait until writable
				case err != nil:
					werr = err
					return true
				}
				iov = advance(iov, n)
				return true
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("write rsync stdin: %w", err)
		}
	}
	return nil
}

// maxIOV is how many buffers one writev takes (Linux's UIO_MAXIOV).
const maxIOV = 1024

// advance drops the first n bytes of iov.
func advance(iov [][]byte, n int) [][]byte {
	for n > 0 && len(iov) > 0 {
		if n < len(iov[0]) {
			iov[0] = iov[0][n:]
			return iov
		}
		n -= len(iov[0])
		iov = iov[1:]
	}
	return iov
}

func killGroup(p *os.Process) error {
	if p == nil {
		return nil
	}
	err := syscall.Kill(-p.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// exitStatus turns cmd.Wait's result into an exit code as a shell reports
// it (128+signal for a killed rsync) and a message.
func exitStatus(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), ee.Error()
		}
		return ee.ExitCode(), ee.Error()
	}
	return 255, err.Error()
}
