// Package tunnel is the master half of the rsync tunnel: the program rsync
// runs as its remote shell (-e), which carries rsync's stdin and stdout over
// the slave's Rsync gRPC stream instead of ssh. It corresponds to the ssh
// transport gsyncd's resource.py rsync relies on; the slave half is
// slave.ServeRsync.
//
// rsync invokes its remote shell as
//
//	<command...> [-l user] <host> rsync --server <options> . <path>
//
// RemoteArgs extracts the remote command from that, Run executes it on the
// slave.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/rawcodec"
)

// chunk is the largest stdin payload of one RsyncRequest.
const chunk = 256 << 10

// stdinPool holds the buffers stdin is read into: each goes to gRPC as it
// is (rawcodec, no copy) and comes back once written, so that a transfer
// reuses a few buffers instead of allocating (and clearing) one per read.
var stdinPool = rawcodec.NewPool(chunk)

// stdinField is RsyncRequest's stdin field: a message of it alone is what
// rawcodec sends from the buffers read.
var stdinField = protowire.Number((&slavev1.RsyncRequest{}).ProtoReflect().Descriptor().Fields().ByName("stdin").Number())

// ExitFailure is the exit code Run returns with an error, as ssh does when
// the connection fails.
const ExitFailure = 255

// RemoteArgs takes the arguments rsync passed to its remote shell after the
// shell's own arguments, "[-l user] host rsync --server ...", and returns the
// remote command, from "rsync" on. The host (and user) mean nothing to the
// tunnel: the caller dialled the slave already.
func RemoteArgs(argv []string) ([]string, error) {
	if len(argv) >= 2 && argv[0] == "-l" {
		argv = argv[2:]
	}
	if len(argv) < 2 {
		return nil, fmt.Errorf("rsync tunnel: want \"<host> rsync --server ...\", got %q", argv)
	}
	rest := argv[1:]
	if rest[0] != "rsync" {
		return nil, fmt.Errorf("rsync tunnel: remote command %q is not rsync (do not set --rsync-path)", rest[0])
	}
	return rest, nil
}

// Run opens the Rsync stream on client (ctx carries the caller's metadata,
// such as the session id), starts remoteArgs on the slave, copies stdin to
// the remote rsync's stdin (closing it at EOF) and the remote stdout and
// stderr to stdout and stderr, and returns the remote exit code.
//
// Like ssh, Run returns as soon as the remote command has exited and its
// output is written, even if stdin is still open: rsync waits for its remote
// shell to exit before it closes the pipe. A Read on stdin that is blocked
// at that moment is left to finish on its own; its data is dropped. Run
// never closes stdin.
//
// When the stream fails, Run returns ExitFailure and the error.
func Run(ctx context.Context, client slavev1.SlaveServiceClient, remoteArgs []string, stdin io.Reader, stdout, stderr io.Writer) (exitCode int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Rsync(ctx)
	if err != nil {
		return ExitFailure, fmt.Errorf("open rsync stream: %w", err)
	}
	start := &slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Start{Start: &slavev1.RsyncStart{Args: remoteArgs}}}
	if err := stream.Send(start); err != nil {
		return ExitFailure, fmt.Errorf("start remote rsync: %w", recvErr(stream, err))
	}

	// The reader goroutine only reads stdin; one sender goroutine owns
	// stream.Send and CloseSend (gRPC allows one sender at a time).
	chunks := make(chan mem.Buffer)
	done := make(chan struct{}) // closed when the remote side has finished
	var readErr error           // set before chunks is closed
	go func() {
		defer close(chunks)
		for {
			buf := stdinPool.Get(chunk)
			n, err := stdin.Read(*buf)
			if n > 0 {
				*buf = (*buf)[:n]
				b := mem.NewBuffer(buf, stdinPool)
				select {
				case chunks <- b:
				case <-done:
					b.Free()
					return
				}
			} else {
				stdinPool.Put(buf)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
		}
	}()
	sendDone := make(chan error, 1)
	go func() {
		sendDone <- sendStdin(stream, chunks, done, &readErr)
	}()

	code, err := recvOutput(stream, stdout, stderr)
	close(done)
	if err != nil {
		cancel() // unblocks a Send stuck in flow control
		<-sendDone
		return ExitFailure, err
	}
	// The remote rsync has exited; a failure to send it more input does not
	// change that, and its exit code tells the story.
	<-sendDone
	// Wait for the slave to end the call, so that it is not cancelled.
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	return code, nil
}

// sendStdin forwards chunks until they end (then sends CloseStdin) or the
// remote side is done, and always half-closes the stream.
func sendStdin(stream slavev1.SlaveService_RsyncClient, chunks <-chan mem.Buffer, done <-chan struct{}, readErr *error) error {
	defer stream.CloseSend()
	for {
		select {
		case <-done:
			return nil
		case b, ok := <-chunks:
			if !ok {
				if *readErr != nil {
					// rsync sees its remote end's input vanish, as with ssh.
					return fmt.Errorf("read stdin: %w", *readErr)
				}
				return stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_CloseStdin{CloseStdin: true}})
			}
			// The wire bytes of RsyncRequest{Stdin: b}; gRPC frees b.
			if err := stream.SendMsg(&rawcodec.Bytes{Field: stdinField, Data: mem.BufferSlice{b}}); err != nil {
				return err
			}
		}
	}
}

// recvOutput writes the remote output until Exit and returns its code.
func recvOutput(stream slavev1.SlaveService_RsyncClient, stdout, stderr io.Writer) (int, error) {
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ExitFailure, errors.New("rsync stream ended without an exit status")
			}
			return ExitFailure, fmt.Errorf("rsync stream: %w", err)
		}
		switch msg := m.GetMsg().(type) {
		case *slavev1.RsyncResponse_Stdout:
			if _, err := stdout.Write(msg.Stdout); err != nil {
				return ExitFailure, fmt.Errorf("write rsync output: %w", err)
			}
		case *slavev1.RsyncResponse_Stderr:
			// Losing diagnostics must not fail the transfer.
			_, _ = stderr.Write(msg.Stderr)
		case *slavev1.RsyncResponse_Exit:
			return int(msg.Exit.GetCode()), nil
		}
	}
}

// recvErr returns the stream's real status after a failed Send (which only
// reports io.EOF).
func recvErr(stream slavev1.SlaveService_RsyncClient, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, rerr := stream.Recv(); rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return err
			}
			return rerr
		}
	}
}
