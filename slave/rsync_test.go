package slave

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/rawcodec"
)

// The server argument lists rsync 3.5.0 produced for master/syncer's options
// (observed through an -e command that logs its argv).
var observedRsyncArgs = [][]string{
	{"rsync", "--server", "-ogtpIRSe.LsfxCIvu", "--numeric-ids", "--existing", "--inplace", "--no-implied-dirs", ".", "."},
	{"rsync", "--server", "-ogtpAIRSe.LsfxCIvu", "--numeric-ids", "--existing", "--inplace", "--no-implied-dirs", ".", "."},
	{"rsync", "--server", "-vogtpIRze.iLsfxCIvu", "--numeric-ids", "--existing", "--inplace", "--no-implied-dirs", ".", "/tmp/rx/dst/"},
	{"rsync", "--server", "-OogtpcIRSe.LsfxCIvu", "--no-r", "--compress-level=3", "-B8192", "--timeout=30", "--bwlimit=1000",
		"--checksum-choice=xxh128", "--compress-choice=zstd", "--max-size=1073741824", "--super", "--modify-window=1",
		"--numeric-ids", "--existing", "--fsync", "--inplace", "--no-implied-dirs", "--preallocate", "--open-noatime", ".", "."},
}

func TestValidateRsyncArgsAccepts(t *testing.T) {
	const dataDir = "/srv/replica/.georep/gfid"
	for _, args := range observedRsyncArgs {
		t.Run(args[2], func(t *testing.T) {
			got, err := ValidateRsyncArgs(args, dataDir)
			if err != nil {
				t.Fatalf("ValidateRsyncArgs: %v", err)
			}
			// Options kept in order, forced ones added, path replaced.
			want := slices.Clone(args[:len(args)-2])
			for _, f := range rsyncForced {
				if !slices.Contains(want, f) {
					want = append(want, f)
				}
			}
			want = append(want, ".", dataDir+"/")
			if !slices.Equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestValidateRsyncArgsPathIgnored(t *testing.T) {
	for _, p := range []string{".", "/etc", "../../..", "x/../../y", "/"} {
		got, err := ValidateRsyncArgs([]string{"rsync", "--server", "-tpe.LsfxCIvu", ".", p}, "/data/")
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		if got[len(got)-1] != "/data/" || got[len(got)-2] != "." {
			t.Errorf("%q: got %q", p, got)
		}
	}
}

func TestValidateRsyncArgsRefuses(t *testing.T) {
	ok := func(opts ...string) []string {
		return append(append([]string{"rsync", "--server"}, opts...), ".", ".")
	}
	tests := []struct {
		name    string
		args    []string
		dataDir string
		bad     string // must appear in the error
	}{
		{"empty", nil, "", "not \"rsync --server"},
		{"not rsync", []string{"sh", "-c", "id"}, "", "sh -c id"},
		{"rsync path", []string{"/usr/bin/rsync", "--server", ".", "."}, "", "/usr/bin/rsync"},
		{"no server", []string{"rsync", "-av", ".", "."}, "", "not \"rsync --server"},
		{"daemon", []string{"rsync", "--daemon"}, "", "--daemon"},
		{"sender", ok("--sender", "-logDtpre.iLsfxCIvu"), "", "--sender"},
		{"sender late", ok("-tpe.LsfxCIvu", "--sender"), "", "--sender"},
		{"symlinks", ok("-logtpIRe.LsfxCIvu"), "", "-l"},
		{"devices", ok("-ogDtpIRe.LsfxCIvu"), "", "-D"},
		{"hardlinks", ok("-Hogtpe.LsfxCIvu"), "", "-H"},
		{"dirs", ok("-dogtpIRSe.LsfxCIvu"), "", "-d"},
		{"recursive", ok("-rogtpIRSe.LsfxCIvu"), "", "-r"},
		{"keep dirlinks", ok("-Ktpe.LsfxCIvu"), "", "-K"},
		{"copy dirlinks", ok("-ktp"), "", "-k"},
		{"copy links", ok("-Ltp"), "", "-L"},
		{"secluded args", ok("-stpe.LsfxCIvu"), "", "-s"},
		{"xattrs", ok("-ogtpAXIRSe.LsfxCIvu"), "", "-X"},
		{"backup", ok("-btp"), "", "-b"},
		{"fuzzy", ok("-ytp"), "", "-y"},
		{"temp dir short", ok("-T", "/tmp"), "", "-T"},
		{"delete", ok("-tp", "--delete"), "", "--delete"},
		{"delete after", ok("--delete-after"), "", "--delete-after"},
		{"delete excluded", ok("--delete-excluded"), "", "--delete-excluded"},
		{"remove source", ok("--remove-source-files"), "", "--remove-source-files"},
		{"rsync-path", ok("--rsync-path=sh -c id"), "", "--rsync-path"},
		{"files-from server path", ok("--files-from=/etc/shadow"), "", "--files-from"},
		{"log file", ok("--log-file=/etc/cron.d/x"), "", "--log-file"},
		{"temp dir", ok("--temp-dir=/tmp"), "", "--temp-dir"},
		{"partial dir", ok("--partial-dir=/tmp"), "", "--partial-dir"},
		{"backup dir", ok("--backup-dir=/tmp"), "", "--backup-dir"},
		{"compare dest", ok("--compare-dest=/etc"), "", "--compare-dest"},
		{"link dest", ok("--link-dest=/etc"), "", "--link-dest"},
		{"copy dest", ok("--copy-dest=/etc"), "", "--copy-dest"},
		{"fake super", ok("--fake-super"), "", "--fake-super"},
		{"write devices", ok("--write-devices"), "", "--write-devices"},
		{"copy devices", ok("--copy-devices"), "", "--copy-devices"},
		{"keep dirlinks long", ok("--keep-dirlinks"), "", "--keep-dirlinks"},
		{"mkpath", ok("--mkpath"), "", "--mkpath"},
		{"chown", ok("--chown=0:0"), "", "--chown"},
		{"filter", ok("--filter=merge /etc/x"), "", "--filter"},
		{"include from", ok("--exclude-from=/etc/x"), "", "--exclude-from"},
		{"config", ok("--config=/etc/x"), "", "--config"},
		{"only write batch", ok("--only-write-batch=/tmp/x"), "", "--only-write-batch"},
		{"timeout not a number", ok("--timeout=1;id"), "", "--timeout=1;id"},
		{"compress choice junk", ok("--compress-choice=../x"), "", "--compress-choice"},
		{"flag with value", ok("--inplace=1"), "", "--inplace=1"},
		{"block size junk", ok("-B1x"), "", "-B1x"},
		{"capability with command", ok("-tpe sh -c id"), "", "capability"},
		{"capability slash", ok("-tpe./bin/sh"), "", "capability"},
		{"bare dash", ok("-"), "", "\"-\""},
		{"path before dot", []string{"rsync", "--server", "-tp", "/etc", ".", "."}, "", "/etc"},
		{"option after dot", []string{"rsync", "--server", "-tp", ".", "--delete", "."}, "", "--delete"},
		{"option as path", []string{"rsync", "--server", "-tp", ".", "--delete"}, "", "--delete"},
		{"two paths", []string{"rsync", "--server", "-tp", ".", "a", "b"}, "", "\"b\""},
		{"no path", []string{"rsync", "--server", "-tp", "."}, "", "no destination"},
		{"empty path", []string{"rsync", "--server", "-tp", ".", ""}, "", "empty"},
		{"no dot", []string{"rsync", "--server", "-tp"}, "", "\".\""},
		{"nul in option", ok("-tp\x00--delete"), "", "NUL"},
		{"nul in path", []string{"rsync", "--server", "-tp", ".", "a\x00b"}, "", "NUL"},
		{"empty option", ok(""), "", "not an option"},
		{"relative data dir", ok("-tp"), "relative/dir", "not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := tt.dataDir
			if dataDir == "" {
				dataDir = "/data"
			}
			got, err := ValidateRsyncArgs(tt.args, dataDir)
			if err == nil {
				t.Fatalf("accepted %q as %q", tt.args, got)
			}
			if !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("error %q does not name %q", err, tt.bad)
			}
		})
	}
}

func FuzzValidateRsyncArgs(f *testing.F) {
	for _, a := range observedRsyncArgs {
		f.Add(strings.Join(a, "\n"))
	}
	f.Add("rsync\n--server\n--delete\n.\n.")
	f.Add("rsync\n--server\n-le.x\n.\n/etc")
	f.Add("rsync\n--server\n-tpe.LsfxC/../x\n.\n.")
	f.Add("rsync\n--server\n--temp-dir=/tmp\n.\n.")
	f.Add("rsync\n--server\n--timeout=1;id\n.\n.")
	f.Add("rsync\n--server\n-B8192\n--checksum-choice=xxh128,md5\n.\n../../outside")
	f.Add("rsync\n--server\n-t\n.\n--delete")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\n")
		got, err := ValidateRsyncArgs(args, "/data")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refusal without a reason")
			}
			return
		}
		if len(got) < 4 || got[0] != "rsync" || got[1] != "--server" || got[len(got)-2] != "." || got[len(got)-1] != "/data/" {
			t.Fatalf("bad shape %q", got)
		}
		// The destination the request named never matters.
		other := append(slices.Clone(args[:len(args)-1]), "elsewhere")
		if again, err := ValidateRsyncArgs(other, "/data"); err != nil || !slices.Equal(again, got) {
			t.Fatalf("the requested path changed the result: %q vs %q (%v)", got, again, err)
		}
		for _, a := range got[2 : len(got)-2] {
			if a == "." || !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--delete") || a == "--sender" {
				t.Fatalf("%q let through in %q", a, got)
			}
			// No option carries a path, a shell word or a NUL.
			if strings.ContainsAny(a, "/ \x00;$`'\"\\") {
				t.Fatalf("%q let through in %q", a, got)
			}
			if strings.HasPrefix(a, "--") {
				name, val, hasVal := strings.Cut(a, "=")
				if !rsyncLongFlags[a] && !(hasVal && rsyncLongValues[name] != nil && rsyncLongValues[name](val)) {
					t.Fatalf("long option %q not in the allowlists, in %q", a, got)
				}
				continue
			}
			if strings.HasPrefix(a, "-B") && isUint(a[2:]) {
				continue
			}
			opts, _, _ := strings.Cut(a[1:], "e")
			for _, c := range opts {
				if !strings.ContainsRune(rsyncShortOpts, c) {
					t.Fatalf("short option -%c of %q not in the allowlist, in %q", c, a, got)
				}
			}
			if strings.ContainsAny(opts, "lLkKHDsbyTXdrCmB") {
				t.Fatalf("%q let through in %q", a, got)
			}
		}
		for _, f := range rsyncForced {
			if !slices.Contains(got, f) {
				t.Fatalf("%s missing from %q", f, got)
			}
		}
	})
}

// rsyncServer serves ServeRsync on 127.0.0.1:0 and returns a client. Each
// handler's result is sent to done.
type rsyncServer struct {
	slavev1.UnimplementedSlaveServiceServer
	dataDir, rsyncPath string
	done               chan error
}

func (s *rsyncServer) Rsync(stream slavev1.SlaveService_RsyncServer) error {
	err := ServeRsync(stream, s.dataDir, s.rsyncPath, nil)
	s.done <- err
	return err
}

func startRsyncServer(t *testing.T, rsyncPath string) (slavev1.SlaveServiceClient, *rsyncServer) {
	t.Helper()
	srv := &rsyncServer{dataDir: t.TempDir(), rsyncPath: rsyncPath, done: make(chan error, 10)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	slavev1.RegisterSlaveServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return slavev1.NewSlaveServiceClient(cc), srv
}

// fakeRsync writes a shell script standing in for rsync.
func fakeRsync(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rsync")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var validArgs = []string{"rsync", "--server", "-ogtpIRSe.LsfxCIvu", "--numeric-ids", "--existing", "--inplace", "--no-implied-dirs", ".", "."}

func startMsg(args []string) *slavev1.RsyncRequest {
	return &slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Start{Start: &slavev1.RsyncStart{Args: args}}}
}

type rsyncResult struct {
	stdout, stderr bytes.Buffer
	maxChunk       int
	exit           *slavev1.RsyncExit
	err            error
}

func readAll(stream slavev1.SlaveService_RsyncClient) *rsyncResult {
	r := &rsyncResult{}
	for {
		m, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
			}
			return r
		}
		switch msg := m.GetMsg().(type) {
		case *slavev1.RsyncResponse_Stdout:
			r.stdout.Write(msg.Stdout)
			r.maxChunk = max(r.maxChunk, len(msg.Stdout))
		case *slavev1.RsyncResponse_Stderr:
			r.stderr.Write(msg.Stderr)
		case *slavev1.RsyncResponse_Exit:
			r.exit = msg.Exit
			_ = stream.CloseSend()
		}
	}
}

func TestServeRsyncPumps(t *testing.T) {
	logDir := t.TempDir()
	// The fake records its argv and cwd, echoes stdin, then writes 1 MiB.
	script := fakeRsync(t, `printf '%s\n' "$0" "$@" > `+logDir+`/argv
pwd > `+logDir+`/cwd
cat
echo oops >&2
head -c 1048576 /dev/zero
exit 23`)
	client, srv := startRsyncServer(t, script)
	stream, err := client.Rsync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*slavev1.RsyncRequest{
		startMsg(validArgs),
		{Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("hello ")}},
		{Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("world\n")}},
		{Msg: &slavev1.RsyncRequest_CloseStdin{CloseStdin: true}},
	} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	r := readAll(stream)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := <-srv.done; err != nil {
		t.Fatalf("handler: %v", err)
	}
	if r.exit == nil || r.exit.Code != 23 {
		t.Fatalf("exit = %v, want code 23", r.exit)
	}
	want := append([]byte("hello world\n"), make([]byte, 1<<20)...)
	if !bytes.Equal(r.stdout.Bytes(), want) {
		t.Errorf("stdout: got %d bytes, want %d", r.stdout.Len(), len(want))
	}
	if r.maxChunk > rsyncChunk {
		t.Errorf("stdout chunk of %d bytes, limit %d", r.maxChunk, rsyncChunk)
	}
	if r.stderr.String() != "oops\n" {
		t.Errorf("stderr = %q", r.stderr.String())
	}
	argv, _ := os.ReadFile(filepath.Join(logDir, "argv"))
	wantArgv, _ := ValidateRsyncArgs(validArgs, srv.dataDir)
	wantArgv[0] = script
	if got := strings.Split(strings.TrimSuffix(string(argv), "\n"), "\n"); !slices.Equal(got, wantArgv) {
		t.Errorf("argv\n got  %q\n want %q", got, wantArgv)
	}
	cwd, _ := os.ReadFile(filepath.Join(logDir, "cwd"))
	if strings.TrimSpace(string(cwd)) != srv.dataDir {
		t.Errorf("cwd = %q, want %q", cwd, srv.dataDir)
	}
}

func TestServeRsyncHalfCloseClosesStdin(t *testing.T) {
	client, srv := startRsyncServer(t, fakeRsync(t, "wc -c"))
	stream, err := client.Rsync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(startMsg(validArgs))
	_ = stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("12345")}})
	_ = stream.CloseSend()
	r := readAll(stream)
	if r.err != nil || r.exit == nil || r.exit.Code != 0 || strings.TrimSpace(r.stdout.String()) != "5" {
		t.Fatalf("got err=%v exit=%v stdout=%q", r.err, r.exit, r.stdout.String())
	}
	if err := <-srv.done; err != nil {
		t.Fatal(err)
	}
}

func TestServeRsyncRefuses(t *testing.T) {
	tests := []struct {
		name  string
		rsync string
		first *slavev1.RsyncRequest
		code  codes.Code
		msg   string
	}{
		{"stdin first", "", &slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("x")}}, codes.InvalidArgument, "Start"},
		{"empty first", "", &slavev1.RsyncRequest{}, codes.InvalidArgument, "Start"},
		{"hostile args", "", startMsg([]string{"rsync", "--server", "--delete", ".", "/"}), codes.InvalidArgument, "--delete"},
		{"sender", "", startMsg([]string{"rsync", "--server", "--sender", "-tp", ".", "/etc"}), codes.InvalidArgument, "--sender"},
		{"shell", "", startMsg([]string{"sh", "-c", "rm -rf /"}), codes.InvalidArgument, "rsync --server"},
		{"no rsync", "/nonexistent/rsync", startMsg(validArgs), codes.FailedPrecondition, "install the Debian package rsync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rsync := tt.rsync
			if rsync == "" {
				rsync = fakeRsync(t, "touch ran; exit 0")
			}
			client, srv := startRsyncServer(t, rsync)
			stream, err := client.Rsync(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			_ = stream.Send(tt.first)
			r := readAll(stream)
			if st := status.Convert(r.err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Fatalf("got %v, want %v containing %q", r.err, tt.code, tt.msg)
			}
			<-srv.done
			if _, err := os.Stat(filepath.Join(srv.dataDir, "ran")); err == nil {
				t.Error("rsync ran")
			}
		})
	}
}

func TestServeRsyncClosedBeforeStart(t *testing.T) {
	client, srv := startRsyncServer(t, fakeRsync(t, "exit 0"))
	stream, err := client.Rsync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	r := readAll(stream)
	if status.Code(r.err) != codes.InvalidArgument {
		t.Fatalf("got %v", r.err)
	}
	<-srv.done
}

func TestServeRsyncSecondStart(t *testing.T) {
	client, srv := startRsyncServer(t, fakeRsync(t, "exec sleep 30"))
	stream, err := client.Rsync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(startMsg(validArgs))
	_ = stream.Send(startMsg(validArgs))
	r := readAll(stream)
	if status.Code(r.err) != codes.InvalidArgument {
		t.Fatalf("got %v", r.err)
	}
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return: rsync not killed")
	}
}

// A client that goes away mid-transfer gets rsync and everything it forked
// killed and reaped.
func TestServeRsyncClientGone(t *testing.T) {
	pids := t.TempDir()
	client, srv := startRsyncServer(t, fakeRsync(t, `sleep 300 &
echo $! > `+pids+`/child
echo $$ > `+pids+`/main.tmp && mv `+pids+`/main.tmp `+pids+`/main
echo started
wait`))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := client.Rsync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(startMsg(validArgs)); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // "started"
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-srv.done:
		if status.Code(err) != codes.Canceled {
			t.Errorf("handler returned %v, want Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return after the client went away")
	}
	for _, name := range []string{"main", "child"} {
		b, err := os.ReadFile(filepath.Join(pids, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		waitGone(t, pid)
	}
}

// waitGone waits until pid no longer runs (a zombie left to an init that
// does not reap counts as gone).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || syscall.Kill(pid, 0) != nil {
			return
		}
		if _, rest, ok := bytes.Cut(stat, []byte(") ")); ok && len(rest) > 0 && rest[0] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stdin reaches rsync byte for byte, in order, whether the master sends its
// chunks as RsyncRequest messages or as rawcodec.Bytes from its own buffers
// (the same bytes on the wire), chunks of every size, many frames each, the
// pipe to rsync full most of the time (the fake reads slowly at first).
func TestServeRsyncStdinExact(t *testing.T) {
	sizes := []int{1, 16<<10 - 1, 16 << 10, 16<<10 + 1, 100_000, 256 << 10, 1 << 20, 7}
	var want []byte
	for i, n := range sizes {
		want = append(want, bytes.Repeat([]byte{byte(i + 1)}, n)...)
	}
	for i := range want {
		want[i] ^= byte(i * 7)
	}
	tests := []struct {
		name string
		send func(stream slavev1.SlaveService_RsyncClient, p []byte) error
	}{
		{"protobuf message", func(stream slavev1.SlaveService_RsyncClient, p []byte) error {
			return stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Stdin{Stdin: p}})
		}},
		{"rawcodec bytes", func(stream slavev1.SlaveService_RsyncClient, p []byte) error {
			return stream.SendMsg(&rawcodec.Bytes{Field: stdinField, Data: mem.BufferSlice{mem.SliceBuffer(bytes.Clone(p))}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "stdin")
			client, srv := startRsyncServer(t, fakeRsync(t, "sleep 0.2; cat > "+out))
			stream, err := client.Rsync(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(startMsg(validArgs)); err != nil {
				t.Fatal(err)
			}
			off := 0
			for _, n := range sizes {
				if err := tt.send(stream, want[off:off+n]); err != nil {
					t.Fatal(err)
				}
				off += n
			}
			if err := stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_CloseStdin{CloseStdin: true}}); err != nil {
				t.Fatal(err)
			}
			r := readAll(stream)
			if r.err != nil || r.exit == nil || r.exit.Code != 0 {
				t.Fatalf("err=%v exit=%v stderr=%q", r.err, r.exit, r.stderr.String())
			}
			if err := <-srv.done; err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("rsync read %d bytes, want %d; first difference at %d", len(got), len(want), i)
			}
		})
	}
}

func TestAdvance(t *testing.T) {
	tests := []struct {
		n    int
		want []string
	}{
		{0, []string{"ab", "cde", "f"}},
		{1, []string{"b", "cde", "f"}},
		{2, []string{"cde", "f"}},
		{4, []string{"e", "f"}},
		{6, nil},
	}
	for _, tt := range tests {
		got := advance([][]byte{[]byte("ab"), []byte("cde"), []byte("f")}, tt.n)
		var s []string
		for _, b := range got {
			s = append(s, string(b))
		}
		if !slices.Equal(s, tt.want) {
			t.Errorf("advance %d = %q, want %q", tt.n, s, tt.want)
		}
	}
}
