package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

// waitPoll is how often checkpoint wait asks every master (a variable for
// the tests).
var waitPoll = time.Second

// maxParallel bounds how many masters a session-wide command asks at once.
const maxParallel = 16

// node is one master of the session: its status service as the operator
// named it (or as the volume's bricks name its host) and a client of it.
type node struct {
	name   string
	client masterv1.MasterServiceClient
}

// cluster runs a command on every master of a session (the nodes holding
// the master volume's bricks, each with its own georep-master) and merges
// what they answer. Nodes keep the order they were given in; every result
// is in that order.
type cluster struct {
	nodes   []node
	timeout time.Duration // bound of one call to one node
	json    bool
	reason  string
	wait    time.Duration // checkpoint wait: --timeout (0: no bound)
	poll    time.Duration // checkpoint wait: how often the nodes are asked
	// audit --content, --wait
	auditContent, auditWait bool
	out                     io.Writer
	errw                    io.Writer
}

// answer is one node's answer to a call, or why there is none.
type answer[T any] struct {
	Node string
	Resp T
	Err  error
}

// fanOut calls call on every node, at most maxParallel at once, each call
// bounded by c.timeout, and returns the answers in node order.
func fanOut[T any](ctx context.Context, c *cluster, call func(context.Context, masterv1.MasterServiceClient) (T, error)) []answer[T] {
	out := make([]answer[T], len(c.nodes))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		out[i].Node = n.name
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i].Err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			resp, err := call(cctx, n.client)
			if err != nil && !expired(ctx) && (status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)) {
				err = fmt.Errorf("%w: no answer within %s", errNoAnswer, c.timeout)
			}
			out[i].Resp, out[i].Err = resp, err
		})
	}
	wg.Wait()
	return out
}

// expired reports whether ctx is done or its deadline has passed (its
// timer may not have run yet when a call already failed on it).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// errNoAnswer: a node did not answer within the per-node timeout.
var errNoAnswer = errors.New("unreachable")

// reachable says whether err (a node's answer) came from the node, as
// opposed to the node not answering at all.
func reachable(err error) bool {
	return err == nil || !(errors.Is(err, errNoAnswer) || status.Code(err) == codes.Unavailable)
}

// errText is what the operator is told of a node's error.
func errText(err error) string {
	if errors.Is(err, errNoAnswer) {
		return err.Error()
	}
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.Unavailable {
			return "unreachable: " + s.Message()
		}
		return s.Message()
	}
	return err.Error()
}

// failedNodes returns the nodes of answers whose call failed.
func failedNodes[T any](as []answer[T]) []string {
	var names []string
	for _, a := range as {
		if a.Err != nil {
			names = append(names, a.Node)
		}
	}
	return names
}

// outcome is the exit code of a command that went to every node: exitOK
// when all succeeded, exitPartial when some did, exitError when none did.
func outcome[T any](as []answer[T]) int {
	failed := len(failedNodes(as))
	switch {
	case failed == 0:
		return exitOK
	case failed < len(as):
		return exitPartial
	}
	return exitError
}

func (c *cluster) dispatch(ctx context.Context, args []string) (int, error) {
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
		return c.status(ctx)
	case cmd == "checkpoint" && len(rest) == 0:
		return c.checkpointShow(ctx)
	case cmd == "checkpoint" && arg(0) == "set" && len(rest) <= 2:
		return c.checkpointSet(ctx, arg(1), time.Now())
	case cmd == "checkpoint" && arg(0) == "wait" && len(rest) == 1:
		return c.checkpointWait(ctx)
	case cmd == "failures" && len(rest) == 0:
		return c.failures(ctx)
	case cmd == "failures" && arg(0) == "retry" && len(rest) == 1:
		return c.retry(ctx)
	case cmd == "failures" && arg(0) == "skip" && len(rest) == 2:
		return c.skip(ctx, arg(1))
	case cmd == "audit" && len(rest) == 0:
		return c.audit(ctx)
	case cmd == "pause" && len(rest) == 0:
		as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.PauseResponse, error) {
			return cl.Pause(ctx, &masterv1.PauseRequest{})
		})
		return report(c, as, "paused", func(*masterv1.PauseResponse) string {
			return "paused: the workers stop after the pass in flight"
		}), nil
	case cmd == "resume" && len(rest) == 0:
		as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.ResumeResponse, error) {
			return cl.Resume(ctx, &masterv1.ResumeRequest{})
		})
		return report(c, as, "resumed", func(*masterv1.ResumeResponse) string { return "resumed" }), nil
	case cmd == "config" && arg(0) == "get" && len(rest) <= 2:
		return c.configGet(ctx, arg(1))
	case cmd == "config" && arg(0) == "set" && len(rest) == 3:
		key := arg(1)
		value, err := configSetValue(key, arg(2), time.Now()) // one time for every master
		if err != nil {
			return exitError, err
		}
		as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.SetConfigResponse, error) {
			return cl.SetConfig(ctx, &masterv1.SetConfigRequest{Key: key, Value: value})
		})
		return report(c, as, key+" set", func(r *masterv1.SetConfigResponse) string { return configSetText(r.GetValue()) }), nil
	case cmd == "config" && configResetKey(rest) != "":
		key := configResetKey(rest)
		as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.ResetConfigResponse, error) {
			return cl.ResetConfig(ctx, &masterv1.ResetConfigRequest{Key: key})
		})
		return report(c, as, key+" reset", func(r *masterv1.ResetConfigResponse) string { return configResetText(r.GetValue()) }), nil
	}
	fmt.Fprintf(c.errw, "georepctl: unknown command %q\n", strings.Join(args, " "))
	fmt.Fprint(c.errw, usage)
	return exitUsage, nil
}

// audit asks every master for an audit round and, with --wait, asks for
// their status every poll until every worker that audits has ended a round
// started since (bounded by --timeout).
func (c *cluster) audit(ctx context.Context) (int, error) {
	asked := time.Now()
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.AuditResponse, error) {
		return cl.Audit(ctx, &masterv1.AuditRequest{Content: c.auditContent})
	})
	if !c.auditWait {
		return report(c, as, "audit asked for", func(*masterv1.AuditResponse) string { return "audit asked for" }), nil
	}
	if outcome(as) == exitError {
		return report(c, as, "audit asked for", func(*masterv1.AuditResponse) string { return "" }), nil
	}
	if c.wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.wait)
		defer cancel()
	}
	for {
		st := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.GetStatusResponse, error) {
			return cl.GetStatus(ctx, &masterv1.GetStatusRequest{})
		})
		done := true
		for _, a := range st {
			for _, w := range a.Resp.GetWorkers() {
				au := w.GetAudit()
				if au != nil && (au.GetRunning() || au.GetStarted().AsTime().Before(asked.Add(-time.Second))) && w.GetState() == masterv1.WorkerState_WORKER_STATE_ACTIVE {
					done = false
				}
			}
		}
		if done {
			return report(c, st, "audited", func(r *masterv1.GetStatusResponse) string {
				var lines []string
				for _, w := range r.GetWorkers() {
					if au := w.GetAudit(); au.GetStarted() != nil {
						lines = append(lines, w.GetBrick()+": "+auditText(au))
					}
				}
				return strings.Join(lines, "\n")
			}), nil
		}
		select {
		case <-ctx.Done():
			return exitTimeout, fmt.Errorf("audit --wait: not over within %s", c.wait)
		case <-time.After(c.poll):
		}
	}
}

// report prints one line per node of a command sent to every node, then,
// when some failed, on which nodes it took effect and on which not.
func report[T any](c *cluster, as []answer[T], what string, ok func(T) string) int {
	printReport(c.out, c.errw, as, what, ok)
	return outcome(as)
}

func (c *cluster) status(ctx context.Context) (int, error) {
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.GetStatusResponse, error) {
		return cl.GetStatus(ctx, &masterv1.GetStatusRequest{})
	})
	var err error
	if c.json {
		err = printClusterStatusJSON(c.out, as)
	} else {
		err = printClusterStatus(c.out, as, time.Now())
	}
	return outcome(as), err
}

func (c *cluster) checkpointShow(ctx context.Context) (int, error) {
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.GetStatusResponse, error) {
		return cl.GetStatus(ctx, &masterv1.GetStatusRequest{})
	})
	var err error
	if c.json {
		err = printClusterCheckpointJSON(c.out, as)
	} else {
		err = printClusterCheckpoint(c.out, as)
	}
	return outcome(as), err
}

// checkpointSet resolves when (now, or a TIME) once and sets that same
// absolute time on every node.
func (c *cluster) checkpointSet(ctx context.Context, when string, now time.Time) (int, error) {
	t := now
	if when != "" && when != "now" {
		var err error
		if t, err = parseTime(when); err != nil {
			return exitError, err
		}
	}
	req := &masterv1.SetCheckpointRequest{Time: timestamp(t)}
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.SetCheckpointResponse, error) {
		return cl.SetCheckpoint(ctx, req)
	})
	printReport(c.out, c.errw, as, "checkpoint "+formatTime(req.GetTime())+" set", func(r *masterv1.SetCheckpointResponse) string {
		return "checkpoint set: " + formatTime(r.GetCheckpoint().GetTime())
	})
	if failed := failedNodes(as); len(failed) > 0 && len(failed) < len(as) {
		fmt.Fprintf(c.errw, "to set the same checkpoint on them: georepctl --master %s checkpoint set %s\n",
			strings.Join(failed, ","), t.UTC().Format(time.RFC3339Nano))
	}
	return outcome(as), nil
}

// checkpointWait asks every node for its checkpoint every c.poll until all
// are complete (exit 0), c.wait passes (exit 3, naming the nodes not done),
// or a node answers that it has no checkpoint (exit 1). A node that does not
// answer is asked again at the next round.
func (c *cluster) checkpointWait(ctx context.Context) (int, error) {
	if c.wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.wait)
		defer cancel()
	}
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	var last []answer[*masterv1.GetStatusResponse]
	lastLine := ""
	for {
		as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.GetStatusResponse, error) {
			return cl.GetStatus(ctx, &masterv1.GetStatusRequest{})
		})
		if !expired(ctx) {
			last = as
			w := waitState(as)
			if line := w.progressLine(); line != lastLine {
				fmt.Fprintln(c.errw, line)
				lastLine = line
			}
			if len(w.noCheckpoint) > 0 {
				return exitError, fmt.Errorf("no checkpoint is set on %s (georepctl ... checkpoint set now)", strings.Join(w.noCheckpoint, ", "))
			}
			if w.complete() {
				fmt.Fprintln(c.out, w.completedLine())
				if w.timesDiffer {
					fmt.Fprintln(c.errw, "warning: the nodes' checkpoints are not at the same time (georepctl ... checkpoint set sets one time on all)")
				}
				return exitOK, nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return exitTimeout, fmt.Errorf("timed out after %s: the checkpoint is not complete on %s", c.wait, waitState(last).pendingText())
			}
			return exitError, ctx.Err()
		case <-tick.C:
		}
	}
}

func (c *cluster) failures(ctx context.Context) (int, error) {
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.ListFailuresResponse, error) {
		return cl.ListFailures(ctx, &masterv1.ListFailuresRequest{})
	})
	var err error
	if c.json {
		err = printClusterFailuresJSON(c.out, as)
	} else {
		err = printClusterFailures(c.out, as)
	}
	return outcome(as), err
}

func (c *cluster) retry(ctx context.Context) (int, error) {
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.RetryFailuresResponse, error) {
		return cl.RetryFailures(ctx, &masterv1.RetryFailuresRequest{})
	})
	return report(c, as, "retrying", func(r *masterv1.RetryFailuresResponse) string {
		s := fmt.Sprintf("retrying %d failures now", r.GetFailures())
		if n := r.GetUnskipped(); n > 0 {
			s += fmt.Sprintf(" (%d of them had been skipped by the operator: they hold stime again while they fail)", n)
		}
		return s
	}), nil
}

// skip asks every node to skip g. The gfid is in the queues of the nodes
// whose bricks hold it: NOT_FOUND from the others is no failure, from all
// of them it is.
func (c *cluster) skip(ctx context.Context, g string) (int, error) {
	if strings.TrimSpace(c.reason) == "" {
		fmt.Fprintln(c.errw, "georepctl: failures skip needs --reason TEXT: why the failure is skipped, recorded in the skip log")
		return exitUsage, nil
	}
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.SkipFailureResponse, error) {
		return cl.SkipFailure(ctx, &masterv1.SkipFailureRequest{Gfid: g, Reason: c.reason})
	})
	var held, failed []answer[*masterv1.SkipFailureResponse]
	notFound := 0
	for _, a := range as {
		switch {
		case a.Err == nil:
			held = append(held, a)
		case status.Code(a.Err) == codes.NotFound:
			notFound++
		default:
			failed = append(failed, a)
		}
	}
	if c.json {
		if err := printClusterSkipJSON(c.out, held); err != nil {
			return exitError, err
		}
	} else {
		for _, a := range held {
			for i, sk := range a.Resp.GetSkipped() {
				f := sk.GetFailure()
				fmt.Fprintf(c.out, "%s: skipped %s (%s) on %s: %s failure %q; recorded in %s\n", a.Node, f.GetGfid(), orNA(f.GetPath()),
					f.GetBrick(), className(f.GetClass()), f.GetReason(), a.Resp.GetLogs()[i])
			}
		}
	}
	for _, a := range failed {
		fmt.Fprintf(c.errw, "%s: failed: %s\n", a.Node, errText(a.Err))
	}
	switch {
	case len(held) == 0 && len(failed) == 0:
		return exitError, fmt.Errorf("gfid %s is in the failure queue of no node (%d asked)", g, notFound)
	case len(failed) > 0 && len(held) > 0:
		return exitPartial, fmt.Errorf("skipped on %s; not asked successfully on %s", nodeNames(held), nodeNames(failed))
	case len(failed) > 0:
		return exitError, fmt.Errorf("gfid %s: skipped on no node; %s failed", g, nodeNames(failed))
	}
	return exitOK, nil
}

func nodeNames[T any](as []answer[T]) string {
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = a.Node
	}
	return strings.Join(names, ", ")
}

func (c *cluster) configGet(ctx context.Context, key string) (int, error) {
	as := fanOut(ctx, c, func(ctx context.Context, cl masterv1.MasterServiceClient) (*masterv1.GetConfigResponse, error) {
		return cl.GetConfig(ctx, &masterv1.GetConfigRequest{Key: key})
	})
	var err error
	if c.json {
		err = printClusterConfigJSON(c.out, as)
	} else {
		err = printClusterConfig(c.out, c.errw, as, key)
	}
	return outcome(as), err
}

// waitProgress is the checkpoint of every node, as one round of
// checkpoint wait found it.
type waitProgress struct {
	nodes []nodeCheckpoint
	// sets says, for every replica set a worker of any node reported
	// (a plain directory's worker is a set of its own), whether one of
	// its Active workers has passed the checkpoint.
	sets         map[string]bool
	noCheckpoint []string // nodes that answered with no checkpoint set
	timesDiffer  bool
}

type nodeCheckpoint struct {
	node        string
	err         error // the node did not answer
	cp          *masterv1.Checkpoint
	done, total int // workers that reached it, of those that count
}

func waitState(as []answer[*masterv1.GetStatusResponse]) waitProgress {
	w := waitProgress{sets: map[string]bool{}}
	var times []string
	for _, a := range as {
		n := nodeCheckpoint{node: a.Node, err: a.Err}
		if a.Err == nil {
			for _, wk := range a.Resp.GetWorkers() {
				key := wk.GetReplicaSet()
				if key == "" {
					key = a.Node + " " + wk.GetBrick()
				}
				done := wk.GetState() == masterv1.WorkerState_WORKER_STATE_ACTIVE && wk.GetCheckpointCompleted()
				w.sets[key] = w.sets[key] || done
			}
			n.cp = a.Resp.GetCheckpoint()
			n.done, n.total = checkpointWorkers(a.Resp)
			if n.cp == nil {
				w.noCheckpoint = append(w.noCheckpoint, a.Node)
			} else {
				times = append(times, formatTime(n.cp.GetTime()))
			}
		}
		w.nodes = append(w.nodes, n)
	}
	w.timesDiffer = len(slices.Compact(slices.Clone(times))) > 1
	return w
}

// checkpointWorkers counts the workers that have reached the checkpoint of
// those that take part in it (not Passive, not Stopped), as the master
// counts them.
func checkpointWorkers(resp *masterv1.GetStatusResponse) (done, total int) {
	for _, w := range resp.GetWorkers() {
		switch w.GetState() {
		case masterv1.WorkerState_WORKER_STATE_PASSIVE, masterv1.WorkerState_WORKER_STATE_STOPPED:
			continue
		}
		total++
		if w.GetCheckpointCompleted() {
			done++
		}
	}
	return done, total
}

// complete says whether the session's checkpoint is complete: every node
// answered with the checkpoint set, and every replica set's Active worker,
// on whichever node, has passed it (a node whose workers are all Passive
// has nothing to pass).
func (w waitProgress) complete() bool {
	for _, n := range w.nodes {
		if n.err != nil || n.cp == nil {
			return false
		}
	}
	for _, done := range w.sets {
		if !done {
			return false
		}
	}
	return len(w.nodes) > 0 && len(w.sets) > 0
}

func (n nodeCheckpoint) text() string {
	switch {
	case n.err != nil:
		return n.node + " " + errText(n.err)
	case n.cp == nil:
		return n.node + " no checkpoint"
	case n.cp.GetCompleted():
		return fmt.Sprintf("%s completed at %s", n.node, formatTime(n.cp.GetCompletionTime()))
	case n.total == 0:
		return n.node + " no Active worker"
	}
	return fmt.Sprintf("%s %d of %d workers reached it", n.node, n.done, n.total)
}

// checkpointTime is the nodes' checkpoint time when they agree.
func (w waitProgress) checkpointTime() string {
	for _, n := range w.nodes {
		if n.cp != nil && !w.timesDiffer {
			return "checkpoint " + formatTime(n.cp.GetTime())
		}
	}
	return "checkpoint"
}

func (w waitProgress) progressLine() string {
	parts := make([]string, len(w.nodes))
	for i, n := range w.nodes {
		parts[i] = n.text()
	}
	return w.checkpointTime() + ": " + strings.Join(parts, "; ")
}

func (w waitProgress) completedLine() string {
	parts := make([]string, len(w.nodes))
	for i, n := range w.nodes {
		if n.total == 0 {
			parts[i] = n.node + " (no Active worker)"
			continue
		}
		parts[i] = fmt.Sprintf("%s at %s", n.node, formatTime(n.cp.GetCompletionTime()))
	}
	return fmt.Sprintf("%s completed on every node (%d): %s", w.checkpointTime(), len(w.nodes), strings.Join(parts, ", "))
}

// pendingText names the nodes whose checkpoint is not complete, and why.
func (w waitProgress) pendingText() string {
	var parts []string
	for _, n := range w.nodes {
		if n.err != nil || (!n.cp.GetCompleted() && n.total > 0) {
			parts = append(parts, n.text())
		}
	}
	if len(parts) == 0 {
		return "every node (no node answered)"
	}
	return strings.Join(parts, "; ")
}
