package tunnel

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
)

func TestRemoteArgs(t *testing.T) {
	tests := []struct {
		argv []string
		want []string
		err  string
	}{
		{[]string{"georep", "rsync", "--server", "-tpe.LsfxCIvu", ".", "."}, []string{"rsync", "--server", "-tpe.LsfxCIvu", ".", "."}, ""},
		{[]string{"-l", "user", "georep", "rsync", "--server", ".", "."}, []string{"rsync", "--server", ".", "."}, ""},
		{[]string{"rsync", "rsync", "--server"}, []string{"rsync", "--server"}, ""},
		{[]string{"georep", "/usr/local/bin/rsync", "--server"}, nil, "not rsync"},
		{[]string{"georep"}, nil, "want"},
		{[]string{"-l", "user"}, nil, "want"},
		{nil, nil, "want"},
	}
	for _, tt := range tests {
		got, err := RemoteArgs(tt.argv)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.argv, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, %v, want %q", tt.argv, got, err, tt.want)
		}
	}
}

// fakeSlave implements Rsync with handler.
type fakeSlave struct {
	slavev1.UnimplementedSlaveServiceServer
	handler func(slavev1.SlaveService_RsyncServer) error
}

func (f *fakeSlave) Rsync(s slavev1.SlaveService_RsyncServer) error { return f.handler(s) }

func startFake(t *testing.T, h func(slavev1.SlaveService_RsyncServer) error) slavev1.SlaveServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	slavev1.RegisterSlaveServiceServer(gs, &fakeSlave{handler: h})
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); gs.Stop(); <-served })
	return slavev1.NewSlaveServiceClient(cc)
}

func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func exitMsg(code int32) *slavev1.RsyncResponse {
	return &slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Exit{Exit: &slavev1.RsyncExit{Code: code}}}
}

// echo is a slave that echoes stdin to stdout until close_stdin, then
// exits with 7, and waits for the client's half-close as ServeRsync does.
func echo(t *testing.T, maxChunk *int) func(slavev1.SlaveService_RsyncServer) error {
	return func(s slavev1.SlaveService_RsyncServer) error {
		md, _ := metadata.FromIncomingContext(s.Context())
		if got := md.Get("georep-session"); len(got) != 1 || got[0] != "sid" {
			return status.Errorf(codes.Unauthenticated, "session %q", got)
		}
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if args := m.GetStart().GetArgs(); !slices.Equal(args, []string{"rsync", "--server", ".", "."}) {
			return status.Errorf(codes.InvalidArgument, "args %q", args)
		}
		_ = s.Send(&slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Stderr{Stderr: []byte("warning\n")}})
		for {
			m, err := s.Recv()
			if err != nil {
				return err
			}
			if m.GetCloseStdin() {
				break
			}
			if maxChunk != nil {
				*maxChunk = max(*maxChunk, len(m.GetStdin()))
			}
			if err := s.Send(&slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Stdout{Stdout: m.GetStdin()}}); err != nil {
				return err
			}
		}
		if err := s.Send(exitMsg(7)); err != nil {
			return err
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			return status.Errorf(codes.InvalidArgument, "no half-close after exit: %v", err)
		}
		return nil
	}
}

func TestRunEcho(t *testing.T) {
	checkNoLeak(t)
	var maxChunk int
	client := startFake(t, echo(t, &maxChunk))
	ctx := metadata.AppendToOutgoingContext(t.Context(), "georep-session", "sid")
	in := bytes.Repeat([]byte("0123456789"), 100_000)
	var stdout, stderr bytes.Buffer
	code, err := Run(ctx, client, []string{"rsync", "--server", ".", "."}, bytes.NewReader(in), &stdout, &stderr)
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if !bytes.Equal(stdout.Bytes(), in) {
		t.Errorf("stdout: %d bytes, want %d", stdout.Len(), len(in))
	}
	if stderr.String() != "warning\n" {
		t.Errorf("stderr %q", stderr.String())
	}
	if maxChunk > chunk {
		t.Errorf("stdin chunk %d > %d", maxChunk, chunk)
	}
}

// Like ssh, Run returns when the remote command exits even though stdin is
// still open (rsync closes it only after its remote shell has exited).
func TestRunReturnsOnExitWithStdinOpen(t *testing.T) {
	checkNoLeak(t)
	client := startFake(t, func(s slavev1.SlaveService_RsyncServer) error {
		if _, err := s.Recv(); err != nil {
			return err
		}
		if err := s.Send(exitMsg(0)); err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	})
	pr, pw := io.Pipe()
	defer pw.Close() // ends the Read that Run leaves behind
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = Run(t.Context(), client, []string{"rsync", "--server", ".", "."}, pr, io.Discard, io.Discard)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the remote exit")
	}
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler func(slavev1.SlaveService_RsyncServer) error
		code    codes.Code
		msg     string
	}{
		{"refused", func(s slavev1.SlaveService_RsyncServer) error {
			_, _ = s.Recv()
			return status.Error(codes.InvalidArgument, `rsync argument "--delete": option not allowed`)
		}, codes.InvalidArgument, "--delete"},
		{"no rsync", func(s slavev1.SlaveService_RsyncServer) error {
			return status.Error(codes.FailedPrecondition, "rsync not found on the slave: install the Debian package rsync")
		}, codes.FailedPrecondition, "Debian package rsync"},
		{"no exit", func(s slavev1.SlaveService_RsyncServer) error {
			_, _ = s.Recv()
			return s.Send(&slavev1.RsyncResponse{Msg: &slavev1.RsyncResponse_Stdout{Stdout: []byte("x")}})
		}, codes.Unknown, "without an exit status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			client := startFake(t, tt.handler)
			var stdout bytes.Buffer
			code, err := Run(t.Context(), client, []string{"rsync", "--server", ".", "."}, strings.NewReader("data"), &stdout, io.Discard)
			if code != ExitFailure || err == nil {
				t.Fatalf("Run = %d, %v", code, err)
			}
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v (%v), want %v containing %q", err, status.Code(err), tt.code, tt.msg)
			}
		})
	}
}
