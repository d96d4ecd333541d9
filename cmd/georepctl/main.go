// Command georepctl asks a running georep-master for its status and steers
// it (gsyncd's `gluster volume geo-replication ... status|config|pause|
// resume` and checkpoints).
//
//	georepctl --master 127.0.0.1:7101 status [--json]
//	georepctl --work-dir /var/lib/georep/data status      # the master's default UNIX socket
//	georepctl ... checkpoint set [now|TIME] | checkpoint wait [--timeout 10m] | checkpoint
//	georepctl ... failures [retry] | failures skip GFID --reason TEXT
//	georepctl ... pause | resume
//	georepctl ... config get [KEY] | config set KEY VALUE
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
	"github.com/georep/georep/rpc"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitTimeout = 3 // checkpoint wait: not complete within --timeout
)

const usage = `usage: georepctl (--master HOST:PORT | --work-dir DIR) COMMAND

commands:
  status [--json]                  one row per worker (gsyncd's status detail), rates, progress
  checkpoint                       the checkpoint and whether it is complete
  checkpoint set [now|TIME]        set a checkpoint (TIME: RFC 3339, "YYYY-MM-DD HH:MM:SS" local, or epoch seconds)
  checkpoint wait [--timeout D]    wait until the checkpoint is complete (exit 3 on timeout)
  failures [--json]                the failure queue: gfid, path, class, reason, since, attempts; the skipped gfids
  failures retry                   retry the failure queue now (the skipped gfids too)
  failures skip GFID --reason TEXT lift a failure: it no longer holds stime (recorded in the worker's skipped.log)
  pause | resume                   stop after the pass in flight | go on
  config get [KEY]                 configuration of the running master
  config set KEY VALUE             change a key that may change live (bandwidth-limit, change-interval, log-level, max-delete)

flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type app struct {
	client  masterv1.MasterServiceClient
	json    bool
	timeout time.Duration
	reason  string
	out     io.Writer
	errw    io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("georepctl", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("master", "", "address of the master's status service (host:port, or unix:PATH)")
	workDir := fs.String("work-dir", "", "the master's work dir: talk to its UNIX socket <work-dir>/status.sock")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 0, "checkpoint wait: give up after this long (0: wait as long as it takes)")
	reason := fs.String("reason", "", "failures skip: why the failure is skipped (required; recorded in the skip log)")
	fs.Usage = func() { fmt.Fprint(stderr, usage+fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	target, err := target(*addr, *workDir)
	if err != nil || fs.NArg() == 0 {
		if err != nil {
			fmt.Fprintln(stderr, "georepctl:", err)
		}
		fs.Usage()
		return exitUsage
	}
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: target, Insecure: true})
	if err != nil {
		fmt.Fprintln(stderr, "georepctl:", err)
		return exitError
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{client: masterv1.NewMasterServiceClient(conn), json: *asJSON, timeout: *timeout, reason: *reason, out: stdout, errw: stderr}
	code, err := a.dispatch(ctx, fs.Args())
	if err != nil {
		msg := err.Error()
		if s, ok := status.FromError(err); ok {
			msg = s.Message()
			if s.Code() == codes.Unavailable {
				msg = fmt.Sprintf("cannot reach the master at %s: %s", target, s.Message())
			}
		}
		fmt.Fprintln(stderr, "georepctl:", msg)
		if code == exitOK {
			code = exitError
		}
	}
	return code
}

// target is the gRPC target of the master's status service.
func target(addr, workDir string) (string, error) {
	switch {
	case addr != "" && workDir != "":
		return "", errors.New("give --master or --work-dir, not both")
	case strings.HasPrefix(addr, "unix:"):
		return addr, nil
	case addr != "":
		return "passthrough:///" + addr, nil
	case workDir != "":
		abs, err := filepath.Abs(workDir)
		if err != nil {
			return "", err
		}
		return "unix://" + filepath.Join(abs, "status.sock"), nil
	}
	return "", errors.New("which master? give --master HOST:PORT (its --status-listen) or --work-dir DIR")
}

func (a *app) dispatch(ctx context.Context, args []string) (int, error) {
	cmd, rest := args[0], args[1:]
	arg := func(i int) string {
		if i < len(rest) {
			return rest[i]
		}
		return ""
	}
	switch {
	case cmd == "status" && len(rest) == 0:
		return exitOK, a.status(ctx)
	case cmd == "checkpoint" && len(rest) == 0:
		return exitOK, a.checkpointShow(ctx)
	case cmd == "checkpoint" && arg(0) == "set" && len(rest) <= 2:
		return exitOK, a.checkpointSet(ctx, arg(1))
	case cmd == "checkpoint" && arg(0) == "wait" && len(rest) == 1:
		return a.checkpointWait(ctx)
	case cmd == "failures" && len(rest) == 0:
		return exitOK, a.failures(ctx)
	case cmd == "failures" && arg(0) == "retry" && len(rest) == 1:
		resp, err := a.client.RetryFailures(ctx, &masterv1.RetryFailuresRequest{})
		if err == nil {
			fmt.Fprintf(a.out, "retrying %d failures now\n", resp.GetFailures())
			if n := resp.GetUnskipped(); n > 0 {
				fmt.Fprintf(a.out, "%d of them had been skipped by the operator: they hold stime again while they fail\n", n)
			}
		}
		return exitOK, err
	case cmd == "failures" && arg(0) == "skip" && len(rest) == 2:
		return a.skip(ctx, arg(1))
	case cmd == "pause" && len(rest) == 0:
		_, err := a.client.Pause(ctx, &masterv1.PauseRequest{})
		if err == nil {
			fmt.Fprintln(a.out, "paused: the workers stop after the pass in flight")
		}
		return exitOK, err
	case cmd == "resume" && len(rest) == 0:
		_, err := a.client.Resume(ctx, &masterv1.ResumeRequest{})
		if err == nil {
			fmt.Fprintln(a.out, "resumed")
		}
		return exitOK, err
	case cmd == "config" && arg(0) == "get" && len(rest) <= 2:
		return exitOK, a.configGet(ctx, arg(1))
	case cmd == "config" && arg(0) == "set" && len(rest) == 3:
		resp, err := a.client.SetConfig(ctx, &masterv1.SetConfigRequest{Key: arg(1), Value: arg(2)})
		if err == nil {
			fmt.Fprintf(a.out, "%s = %s\n", resp.GetValue().GetKey(), resp.GetValue().GetValue())
		}
		return exitOK, err
	}
	fmt.Fprintf(a.errw, "georepctl: unknown command %q\n", strings.Join(args, " "))
	fmt.Fprint(a.errw, usage)
	return exitUsage, nil
}

func (a *app) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.out, string(b))
	return err
}

func (a *app) status(ctx context.Context) error {
	resp, err := a.client.GetStatus(ctx, &masterv1.GetStatusRequest{})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(resp)
	}
	return printStatus(a.out, resp, time.Now())
}

func (a *app) checkpointShow(ctx context.Context) error {
	resp, err := a.client.GetStatus(ctx, &masterv1.GetStatusRequest{})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(resp.GetCheckpoint())
	}
	fmt.Fprintln(a.out, describeCheckpoint(resp.GetCheckpoint()))
	return nil
}

func (a *app) checkpointSet(ctx context.Context, when string) error {
	req := &masterv1.SetCheckpointRequest{}
	if when != "" && when != "now" {
		t, err := parseTime(when)
		if err != nil {
			return err
		}
		req.Time = timestamp(t)
	}
	resp, err := a.client.SetCheckpoint(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "checkpoint set: %s\n", formatTime(resp.GetCheckpoint().GetTime()))
	return nil
}

func (a *app) checkpointWait(ctx context.Context) (int, error) {
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	stream, err := a.client.WaitCheckpoint(ctx, &masterv1.WaitCheckpointRequest{}, grpc.WaitForReady(false))
	if err != nil {
		return exitError, err
	}
	var last *masterv1.WaitCheckpointResponse
	for {
		msg, err := stream.Recv()
		if err == nil {
			if last == nil || msg.GetWorkersDone() != last.GetWorkersDone() {
				fmt.Fprintf(a.errw, "checkpoint %s: %d of %d workers reached it\n",
					formatTime(msg.GetCheckpoint().GetTime()), msg.GetWorkersDone(), msg.GetWorkersTotal())
			}
			last = msg
			if msg.GetCheckpoint().GetCompleted() {
				fmt.Fprintf(a.out, "checkpoint %s completed at %s\n", formatTime(msg.GetCheckpoint().GetTime()),
					formatTime(msg.GetCheckpoint().GetCompletionTime()))
				return exitOK, nil
			}
			continue
		}
		if status.Code(err) == codes.DeadlineExceeded || (ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
			cp := "the checkpoint"
			if last != nil {
				cp = fmt.Sprintf("checkpoint %s (%d of %d workers reached it)", formatTime(last.GetCheckpoint().GetTime()),
					last.GetWorkersDone(), last.GetWorkersTotal())
			}
			return exitTimeout, fmt.Errorf("timed out after %s: %s is not complete", a.timeout, cp)
		}
		if err == io.EOF {
			return exitError, errors.New("the master ended the wait before the checkpoint completed")
		}
		return exitError, err
	}
}

func (a *app) failures(ctx context.Context) error {
	resp, err := a.client.ListFailures(ctx, &masterv1.ListFailuresRequest{})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(resp)
	}
	return printFailures(a.out, resp)
}

func (a *app) skip(ctx context.Context, g string) (int, error) {
	if strings.TrimSpace(a.reason) == "" {
		fmt.Fprintln(a.errw, "georepctl: failures skip needs --reason TEXT: why the failure is skipped, recorded in the skip log")
		return exitUsage, nil
	}
	resp, err := a.client.SkipFailure(ctx, &masterv1.SkipFailureRequest{Gfid: g, Reason: a.reason})
	if err != nil {
		return exitError, err
	}
	if a.json {
		return exitOK, a.printJSON(resp)
	}
	for i, sk := range resp.GetSkipped() {
		f := sk.GetFailure()
		fmt.Fprintf(a.out, "skipped %s (%s) on %s: %s failure %q; recorded in %s\n", f.GetGfid(), orNA(f.GetPath()), f.GetBrick(),
			className(f.GetClass()), f.GetReason(), resp.GetLogs()[i])
	}
	return exitOK, nil
}

func (a *app) configGet(ctx context.Context, key string) error {
	resp, err := a.client.GetConfig(ctx, &masterv1.GetConfigRequest{Key: key})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(resp)
	}
	if key != "" && len(resp.GetValues()) == 1 {
		fmt.Fprintln(a.out, resp.GetValues()[0].GetValue())
		return nil
	}
	for _, v := range resp.GetValues() {
		live := ""
		if v.GetLive() {
			live = "  (live)"
		}
		fmt.Fprintf(a.out, "%s: %s%s\n", v.GetKey(), v.GetValue(), live)
	}
	return nil
}
