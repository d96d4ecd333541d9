// Command georepctl asks a running georep-master for its status and steers
// it (gsyncd's `gluster volume geo-replication ... status|config|pause|
// resume` and checkpoints).
//
//	georepctl --master 127.0.0.1:7101 status [--json]
//	georepctl --work-dir /var/lib/georep/data status      # the master's default UNIX socket
//	georepctl --master m1:7101,m2:7101,m3:7101 status     # every master of a session
//	georepctl --gluster-volume mvol [--status-port 7101] status  # the masters of mvol's bricks
//	georepctl ... checkpoint set [now|TIME] | checkpoint wait [--timeout 10m] | checkpoint
//	georepctl ... failures [retry] | failures skip GFID --reason TEXT
//	georepctl ... audit [--content] [--wait]
//	georepctl ... pause | resume
//	georepctl ... config get [KEY] | config set KEY VALUE | config reset KEY | config [KEY [VALUE]]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/georep/georep/cmd/internal/cli"
	masterv1 "github.com/georep/georep/gen/georep/master/v1"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitTimeout = 3 // checkpoint wait: not complete within --timeout
	exitPartial = 4 // several masters: some did not answer or failed, the others did
)

const usage = `usage: georepctl (--master HOST:PORT[,HOST:PORT...] | --work-dir DIR | --gluster-volume VOL) COMMAND

commands:
  status [--json]                  one row per worker (gsyncd's status detail), rates, progress
  checkpoint                       the checkpoint and whether it is complete
  checkpoint set [now|TIME]        set a checkpoint (TIME: RFC 3339, "YYYY-MM-DD HH:MM:SS" local, or epoch seconds)
  checkpoint wait [--timeout D]    wait until the checkpoint is complete (exit 3 on timeout)
  failures [--json]                the failure queue: gfid, path, class, reason, since, attempts; the skipped gfids
  failures retry                   retry the failure queue now (the skipped gfids too)
  failures skip GFID --reason TEXT lift a failure: it no longer holds stime (recorded in the worker's skipped.log)
  audit [--content] [--wait]       audit the replica now: compare it entry by entry with what was synced and repair what
                                   differs (--content: file contents too, by digests computed on each side; --wait: until
                                   the round and its repairs are over, bounded by --timeout)
  pause | resume                   stop after the pass in flight | go on
  config get [KEY]                 configuration of the running master
  config set KEY VALUE             change a key that may change live (bandwidth-limit, change-interval, checkpoint,
                                   log-level, max-delete); kept in the master's work dir: it outlives a restart
  config [KEY [VALUE]]             gluster's spellings: config get [KEY], or config set KEY VALUE
  config reset KEY | config '!KEY' undo config set: the value the master started with (flag, environment, file or
                                   default); config reset checkpoint clears the checkpoint

several masters (a session spans the nodes holding the master volume's bricks, one georep-master each):
  --master m1:7101,m2:7101 or --gluster-volume VOL (its bricks' hosts at --status-port, from
  'gluster volume info VOL'): every command goes to every master, in parallel, each call bounded by
  --node-timeout. status, failures, checkpoint and config get print one merged view (a NODE column,
  --json: one document with a node field per worker or failure and a list of nodes with their
  reachability); checkpoint set resolves now (or TIME) once and sets that same time on every master;
  checkpoint wait ends when the checkpoint is complete on every master; config get flags values that
  differ between the masters (exit 0); failures skip lifts the gfid on the masters whose queues hold it
  (NotFound elsewhere is no failure, everywhere it is).

exit status: 0 ok; 1 error (with several masters: no master answered or succeeded); 2 usage;
  3 checkpoint wait timed out (the masters not done are named); 4 several masters: some did not
  answer or failed (named; the others' output is printed and the command took effect on them)

flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type app struct {
	client  masterv1.MasterServiceClient
	node    string // the master as named on the command line (--master, or --work-dir's socket)
	json    bool   // --json
	timeout time.Duration
	reason  string
	content bool // audit --content
	wait    bool // audit --wait
	out     io.Writer
	errw    io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("georepctl", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("master", "", "address of the master's status service (host:port, or unix:PATH); several, comma-separated, for every master of a session")
	workDir := fs.String("work-dir", "", "the master's work dir: talk to its UNIX socket <work-dir>/status.sock")
	volume := fs.String("gluster-volume", "", "talk to the master of every node holding a brick of this GlusterFS volume (gluster volume info VOL), at --status-port")
	statusPort := fs.Int("status-port", defaultStatusPort, "--gluster-volume: the port of every node's status service (its --status-listen)")
	glusterCLI := fs.String("gluster-cli", "", "--gluster-volume: path of the gluster CLI (default: gluster in PATH or the sbin directories)")
	nodeTimeout := fs.Duration("node-timeout", 5*time.Second, "several masters: how long one master may take to answer one call before it is reported as not answering")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 0, "checkpoint wait: give up after this long (0: wait as long as it takes)")
	reason := fs.String("reason", "", "failures skip: why the failure is skipped (required; recorded in the skip log)")
	content := fs.Bool("content", false, "audit: compare file contents too")
	wait := fs.Bool("wait", false, "audit: wait until the round and its repairs are over (bounded by --timeout)")
	version := fs.Bool("version", false, "print georepctl's version, commit and build time, and exit")
	var d dialer
	fs.StringVar(&d.tls.Cert, "tls-cert", os.Getenv("GEOREPCTL_TLS_CERT"), "PEM client certificate for mutual TLS with the masters' status-listen (env GEOREPCTL_TLS_CERT)")
	fs.StringVar(&d.tls.Key, "tls-key", os.Getenv("GEOREPCTL_TLS_KEY"), "PEM key of --tls-cert (env GEOREPCTL_TLS_KEY)")
	fs.StringVar(&d.tls.CA, "tls-ca", os.Getenv("GEOREPCTL_TLS_CA"), "PEM CA that signs the masters' status certificates (env GEOREPCTL_TLS_CA)")
	fs.StringVar(&d.tls.ServerName, "tls-server-name", "", "name checked in a master's certificate instead of the host dialled")
	fs.BoolVar(&d.insecure, "insecure", false, "talk plaintext to a master that is not on a loopback address (its status-insecure)")
	fs.Usage = func() { fmt.Fprint(stderr, usage+fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *version {
		fmt.Fprintln(stdout, cli.Version("georepctl"))
		return exitOK
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *nodeTimeout <= 0 {
		fmt.Fprintln(stderr, "georepctl: --node-timeout must be positive")
		return exitUsage
	}
	if *volume != "" || strings.Contains(*addr, ",") {
		var addrs []string
		switch {
		case *volume != "" && (*addr != "" || *workDir != ""):
			fmt.Fprintln(stderr, "georepctl: give --gluster-volume, --master or --work-dir, only one")
			fs.Usage()
			return exitUsage
		case *volume != "":
			var err error
			addrs, err = discoverMasters(ctx, glusterfs.GetVolume, *glusterCLI, *volume, *statusPort)
			if err != nil {
				fmt.Fprintln(stderr, "georepctl:", err)
				return exitError
			}
		default:
			addrs = splitMasters(*addr)
		}
		c := &cluster{timeout: *nodeTimeout, json: *asJSON, reason: *reason, wait: *timeout, auditContent: *content, auditWait: *wait, poll: waitPoll, out: stdout, errw: stderr}
		return runCluster(ctx, c, d, addrs, *workDir, fs.Args())
	}
	target, err := target(*addr, *workDir)
	if err != nil {
		fmt.Fprintln(stderr, "georepctl:", err)
		fs.Usage()
		return exitUsage
	}
	conn, err := d.dial(target)
	if err != nil {
		fmt.Fprintln(stderr, "georepctl:", err)
		return exitUsage
	}
	defer conn.Close()
	node := *addr
	if node == "" {
		node = strings.TrimPrefix(target, "unix://")
	}
	a := &app{client: masterv1.NewMasterServiceClient(conn), node: node, json: *asJSON, timeout: *timeout, reason: *reason,
		content: *content, wait: *wait, out: stdout, errw: stderr}
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

// runCluster runs args on every master of addrs (see cluster).
func runCluster(ctx context.Context, c *cluster, d dialer, addrs []string, workDir string, args []string) int {
	if workDir != "" {
		fmt.Fprintln(c.errw, "georepctl: give several masters with --master, or one with --work-dir, not both")
		return exitUsage
	}
	if len(addrs) == 0 {
		fmt.Fprintln(c.errw, "georepctl: --master names no master")
		return exitUsage
	}
	for _, addr := range addrs {
		t, err := target(addr, "")
		if err != nil {
			fmt.Fprintln(c.errw, "georepctl:", err)
			return exitUsage
		}
		conn, err := d.dial(t)
		if err != nil {
			fmt.Fprintln(c.errw, "georepctl:", err)
			return exitUsage
		}
		defer conn.Close()
		c.nodes = append(c.nodes, node{name: addr, client: masterv1.NewMasterServiceClient(conn)})
	}
	code, err := c.dispatch(ctx, args)
	if err != nil {
		fmt.Fprintln(c.errw, "georepctl:", err)
		if code == exitOK {
			code = exitError
		}
	}
	return code
}

// splitMasters splits --master's comma-separated list, dropping empty
// elements and repetitions (the first stays).
func splitMasters(s string) []string {
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
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

// dialer connects to masters: over their UNIX socket in plaintext, over
// TCP with mutual TLS when given certificates, in plaintext to a loopback
// address or with --insecure; anything else is refused before dialling.
type dialer struct {
	tls      rpc.TLSFiles
	insecure bool
}

func (d dialer) dial(target string) (*grpc.ClientConn, error) {
	if strings.HasPrefix(target, "unix:") {
		return rpc.NewClient(rpc.ClientConfig{Address: target, Insecure: true})
	}
	host := strings.TrimPrefix(target, "passthrough:///")
	useTLS := d.tls.Cert != "" || d.tls.Key != "" || d.tls.CA != ""
	switch {
	case useTLS && d.insecure:
		return nil, errors.New("give --tls-cert/--tls-key/--tls-ca or --insecure, not both")
	case useTLS && (d.tls.Cert == "" || d.tls.Key == "" || d.tls.CA == ""):
		return nil, errors.New("mutual TLS needs --tls-cert, --tls-key and --tls-ca (or GEOREPCTL_TLS_CERT, _KEY, _CA)")
	case useTLS:
		return rpc.NewClient(rpc.ClientConfig{Address: target, TLS: d.tls})
	case d.insecure || rpc.IsLoopback(host):
		return rpc.NewClient(rpc.ClientConfig{Address: target, Insecure: true})
	}
	return nil, fmt.Errorf("%s is not a loopback address: give --tls-cert, --tls-key and --tls-ca for mutual TLS with its status service, or --insecure if it serves plaintext (status-insecure)", host)
}

func (a *app) dispatch(ctx context.Context, args []string) (int, error) {
	args = glusterConfigArgs(args)
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
	case cmd == "audit" && len(rest) == 0:
		return exitOK, a.audit(ctx)
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
		value, err := configSetValue(arg(1), arg(2), time.Now())
		if err != nil {
			return exitError, err
		}
		resp, err := a.client.SetConfig(ctx, &masterv1.SetConfigRequest{Key: arg(1), Value: value})
		if err == nil {
			fmt.Fprintln(a.out, configSetText(resp.GetValue()))
		}
		return exitOK, err
	case cmd == "config" && configResetKey(rest) != "":
		resp, err := a.client.ResetConfig(ctx, &masterv1.ResetConfigRequest{Key: configResetKey(rest)})
		if err == nil {
			fmt.Fprintln(a.out, configResetText(resp.GetValue()))
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
		return writeJSON(a.out, statusDocOf([]answer[*masterv1.GetStatusResponse]{{Node: a.node, Resp: resp}}))
	}
	return printStatus(a.out, resp, time.Now())
}

func (a *app) audit(ctx context.Context) error {
	if a.wait && a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	resp, err := a.client.Audit(ctx, &masterv1.AuditRequest{Content: a.content, Wait: a.wait})
	if err != nil {
		return err
	}
	if a.json {
		return writeJSON(a.out, auditDocOf([]answer[*masterv1.AuditResponse]{{Node: a.node, Resp: resp}}))
	}
	if !a.wait {
		fmt.Fprintln(a.out, "audit asked for: georepctl status shows it (or wait for it with audit --wait)")
		return nil
	}
	var short []string
	for _, s := range resp.GetWorkers() {
		if au := s.GetAudit(); au.GetStarted() != nil {
			fmt.Fprintf(a.out, "%s: %s\n", s.GetBrick(), auditText(au))
			if au.GetError() != "" {
				short = append(short, s.GetBrick())
			}
		}
	}
	if len(short) > 0 {
		return fmt.Errorf("the audit stopped short on %s", strings.Join(short, ", "))
	}
	return nil
}

func (a *app) checkpointShow(ctx context.Context) error {
	resp, err := a.client.GetStatus(ctx, &masterv1.GetStatusRequest{})
	if err != nil {
		return err
	}
	if a.json {
		return printClusterCheckpointJSON(a.out, []answer[*masterv1.GetStatusResponse]{{Node: a.node, Resp: resp}})
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
		return writeJSON(a.out, failuresDocOf([]answer[*masterv1.ListFailuresResponse]{{Node: a.node, Resp: resp}}))
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
		return exitOK, printClusterSkipJSON(a.out, []answer[*masterv1.SkipFailureResponse]{{Node: a.node, Resp: resp}})
	}
	for i, sk := range resp.GetSkipped() {
		f := sk.GetFailure()
		fmt.Fprintf(a.out, "skipped %s (%s) on %s: %s failure %q; recorded in %s\n", f.GetGfid(), orNA(f.GetPath()), f.GetBrick(),
			className(f.GetClass()), f.GetReason(), resp.GetLogs()[i])
	}
	return exitOK, nil
}

// glusterConfigArgs turns gluster's spellings of geo-replication config
// into georepctl's: config (every key) is config get, config KEY is config
// get KEY, config KEY VALUE is config set KEY VALUE. Other args are
// returned as they are.
func glusterConfigArgs(args []string) []string {
	if len(args) == 0 || args[0] != "config" {
		return args
	}
	rest := args[1:]
	if len(rest) > 0 && (rest[0] == "get" || rest[0] == "set" || rest[0] == "reset" || strings.HasPrefix(rest[0], "!")) {
		return args
	}
	switch len(rest) {
	case 0, 1:
		return append([]string{"config", "get"}, rest...)
	case 2:
		return []string{"config", "set", rest[0], rest[1]}
	}
	return args
}

// configResetKey is the key of config reset KEY, or of gluster's spelling
// config '!KEY'; "" when args are neither.
func configResetKey(args []string) string {
	switch {
	case len(args) == 2 && args[0] == "reset":
		return args[1]
	case len(args) == 1 && len(args[0]) > 1 && args[0][0] == '!':
		return args[0][1:]
	}
	return ""
}

// configSetValue is the value config set sends: a checkpoint's time is
// resolved here (now is georepctl's clock, so that every master of a
// session gets the same time, as with checkpoint set); any other value is
// the master's to check.
func configSetValue(key, value string, now time.Time) (string, error) {
	if key != "checkpoint" {
		return value, nil
	}
	t := now
	if value != "now" {
		var err error
		if t, err = parseTime(value); err != nil {
			return "", err
		}
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

func configSetText(v *masterv1.ConfigValue) string {
	return fmt.Sprintf("%s = %s", v.GetKey(), shownValue(v.GetValue()))
}

func configResetText(v *masterv1.ConfigValue) string {
	return fmt.Sprintf("%s = %s (reset: %s)", v.GetKey(), shownValue(v.GetValue()), v.GetSource())
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
	rows := make([]configRow, 0, len(resp.GetValues()))
	for _, v := range resp.GetValues() {
		rows = append(rows, configRow{key: v.GetKey(), value: shownValue(v.GetValue()), source: v.GetSource(), live: v.GetLive()})
	}
	return printConfigTable(a.out, rows)
}
