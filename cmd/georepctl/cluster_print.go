package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

// printReport prints a command's result on every node, one line each in
// node order, and when it failed somewhere, on stderr where it took effect
// and where not.
func printReport[T any](out, errw io.Writer, as []answer[T], what string, ok func(T) string) {
	var done, failed []string
	for _, a := range as {
		if a.Err != nil {
			fmt.Fprintf(out, "%s: failed: %s\n", a.Node, errText(a.Err))
			failed = append(failed, a.Node)
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", a.Node, ok(a.Resp))
		done = append(done, a.Node)
	}
	switch {
	case len(failed) == 0:
	case len(done) == 0:
		fmt.Fprintf(errw, "%s on no node\n", what)
	default:
		fmt.Fprintf(errw, "%s on %s; not on %s\n", what, strings.Join(done, ", "), strings.Join(failed, ", "))
	}
}

// nodeJSON is a node in the JSON documents of the session-wide commands.
type nodeJSON struct {
	Node      string `json:"node"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error"`
}

func nodeOf[T any](a answer[T]) nodeJSON {
	n := nodeJSON{Node: a.Node, Reachable: reachable(a.Err)}
	if a.Err != nil {
		n.Error = errText(a.Err)
	}
	return n
}

// protoJSON is m as `georepctl --json` prints it for one master (nil for a
// nil message).
func protoJSON(m proto.Message) json.RawMessage {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("protojson: %v", err)) // a message we built or received: cannot fail
	}
	return b
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// same returns the value every element of vs has, and whether they agree
// (an empty vs does not).
func same[T comparable](vs []T) (T, bool) {
	var zero T
	if len(vs) == 0 {
		return zero, false
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return zero, false
		}
	}
	return vs[0], true
}

// sessionCheckpoint is the session's checkpoint as the nodes report it:
// none when no node has one; complete when every node's is (a node that
// does not answer is not); its time, set time and completion time (the
// latest) when the nodes agree.
func sessionCheckpoint(as []answer[*masterv1.GetStatusResponse]) *masterv1.Checkpoint {
	var times, sets []string
	var cps []*masterv1.Checkpoint
	complete := true
	for _, a := range as {
		cp := a.Resp.GetCheckpoint()
		if a.Err != nil || cp == nil {
			complete = false
			continue
		}
		cps = append(cps, cp)
		times = append(times, cp.GetTime().AsTime().String())
		sets = append(sets, cp.GetSetTime().AsTime().String())
		complete = complete && cp.GetCompleted()
	}
	if len(cps) == 0 {
		return nil
	}
	out := &masterv1.Checkpoint{Completed: complete}
	if _, ok := same(times); ok {
		out.Time = cps[0].GetTime()
		if _, ok := same(sets); ok {
			out.SetTime = cps[0].GetSetTime()
		}
	}
	if complete {
		for _, cp := range cps {
			if t := cp.GetCompletionTime(); out.CompletionTime == nil || t.AsTime().After(out.CompletionTime.AsTime()) {
				out.CompletionTime = t
			}
		}
	}
	return out
}

func printClusterStatusJSON(w io.Writer, as []answer[*masterv1.GetStatusResponse]) error {
	return writeJSON(w, statusDocOf(as))
}

// failedState is the STATUS of the row of a node that did not answer.
func failedState(err error) string {
	if reachable(err) {
		return "Error"
	}
	return "Unreachable"
}

// printClusterStatus prints every worker of every node in one table (a
// NODE column before gsyncd's), a row for each node that did not answer,
// then what printStatus prints after its table, per node, and a summary.
func printClusterStatus(w io.Writer, as []answer[*masterv1.GetStatusResponse], now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\t"+statusColumns)
	states := map[masterv1.WorkerState]int{}
	workers, answered, paused := 0, 0, 0
	for _, a := range as {
		if a.Err != nil {
			cells := slices.Repeat([]string{"N/A"}, strings.Count(statusColumns, "\t")+1)
			cells[3] = failedState(a.Err)
			fmt.Fprintln(tw, a.Node+"\t"+strings.Join(cells, "\t"))
			continue
		}
		answered++
		if a.Resp.GetPaused() {
			paused++
		}
		for _, s := range a.Resp.GetWorkers() {
			fmt.Fprintln(tw, a.Node+"\t"+workerCells(s))
			states[s.GetState()]++
			workers++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case answered > 0 && paused == answered:
		fmt.Fprintln(w, "\nthe session is paused on every node that answered (georepctl resume lets it go on)")
	case paused > 0:
		for _, a := range as {
			if a.Err == nil && a.Resp.GetPaused() {
				fmt.Fprintf(w, "\n%s: the session is paused (georepctl resume lets it go on)\n", a.Node)
			}
		}
	}
	for _, a := range as {
		if a.Err != nil {
			fmt.Fprintf(w, "\n%s: %s\n", a.Node, errText(a.Err))
			continue
		}
		if len(a.Resp.GetWorkers()) == 0 {
			fmt.Fprintf(w, "\n%s: no workers\n", a.Node)
		}
		for _, s := range a.Resp.GetWorkers() {
			if r := s.GetReason(); r != "" {
				fmt.Fprintf(w, "\n%s %s %s: %s\n", a.Node, s.GetBrick(), stateNames[s.GetState()], r)
			}
			if p := s.GetProgress(); p != nil {
				fmt.Fprintf(w, "\n%s %s: %s\n", a.Node, s.GetBrick(), progressText(p, now))
			}
		}
	}
	var counts []string
	for _, st := range []masterv1.WorkerState{masterv1.WorkerState_WORKER_STATE_ACTIVE, masterv1.WorkerState_WORKER_STATE_PASSIVE,
		masterv1.WorkerState_WORKER_STATE_FAULTY, masterv1.WorkerState_WORKER_STATE_INITIALIZING,
		masterv1.WorkerState_WORKER_STATE_PAUSED, masterv1.WorkerState_WORKER_STATE_STOPPED, masterv1.WorkerState_WORKER_STATE_UNSPECIFIED} {
		if n := states[st]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, orNA(stateNames[st])))
		}
	}
	summary := fmt.Sprintf("\n%d of %d nodes answered; %d workers", answered, len(as), workers)
	if len(counts) > 0 {
		summary += ": " + strings.Join(counts, ", ")
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

// clusterCheckpointJSON is `checkpoint --json` for several masters.
type clusterCheckpointJSON struct {
	SchemaVersion int                  `json:"schema_version"`
	Nodes         []checkpointNodeJSON `json:"nodes"`
	// Checkpoint is the session's (see sessionCheckpoint).
	Checkpoint *checkpointDoc `json:"checkpoint"`
	// Complete: every node's checkpoint is complete.
	Complete bool `json:"complete"`
	// SameTime: every node's checkpoint is at the same time.
	SameTime bool `json:"same_time"`
}

type checkpointNodeJSON struct {
	nodeJSON
	Checkpoint   *checkpointDoc `json:"checkpoint"`
	WorkersDone  int            `json:"workers_done"`
	WorkersTotal int            `json:"workers_total"`
}

func printClusterCheckpointJSON(w io.Writer, as []answer[*masterv1.GetStatusResponse]) error {
	doc := clusterCheckpointJSON{SchemaVersion: schemaVersion, Nodes: []checkpointNodeJSON{}}
	for _, a := range as {
		n := checkpointNodeJSON{nodeJSON: nodeOf(a)}
		if a.Err == nil {
			n.Checkpoint = checkpointOf(a.Resp.GetCheckpoint())
			n.WorkersDone, n.WorkersTotal = checkpointWorkers(a.Resp)
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	ws := waitState(as)
	doc.Complete = ws.complete()
	doc.SameTime = !ws.timesDiffer && len(ws.noCheckpoint) == 0 && len(failedNodes(as)) == 0
	doc.Checkpoint = checkpointOf(sessionCheckpoint(as))
	return writeJSON(w, doc)
}

// printClusterCheckpoint prints each node's checkpoint, then whether the
// session's is complete.
func printClusterCheckpoint(w io.Writer, as []answer[*masterv1.GetStatusResponse]) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCHECKPOINT TIME\tSET\tCOMPLETED\tCOMPLETION TIME\tWORKERS REACHED IT")
	for _, a := range as {
		switch cp := a.Resp.GetCheckpoint(); {
		case a.Err != nil:
			fmt.Fprintf(tw, "%s\t%s\n", a.Node, errText(a.Err))
		case cp == nil:
			fmt.Fprintf(tw, "%s\tnone\n", a.Node)
		default:
			done := "No"
			if cp.GetCompleted() {
				done = "Yes"
			}
			d, n := checkpointWorkers(a.Resp)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\n", a.Node, formatTime(cp.GetTime()), formatTime(cp.GetSetTime()), done,
				formatTime(cp.GetCompletionTime()), d, n)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ws := waitState(as)
	switch {
	case len(ws.noCheckpoint) == len(as):
		fmt.Fprintln(w, "no checkpoint")
	case ws.complete():
		fmt.Fprintf(w, "%s: complete on every node\n", ws.checkpointTime())
	default:
		fmt.Fprintf(w, "%s: not complete on %s\n", ws.checkpointTime(), ws.pendingText())
	}
	if ws.timesDiffer {
		fmt.Fprintln(w, "the nodes' checkpoints are not at the same time (georepctl ... checkpoint set sets one time on all)")
	}
	return nil
}

func printClusterFailuresJSON(w io.Writer, as []answer[*masterv1.ListFailuresResponse]) error {
	return writeJSON(w, failuresDocOf(as))
}

// printClusterFailures prints every node's failure queue in one table (a
// NODE column first), then the skipped gfids, then the nodes that did not
// answer.
func printClusterFailures(w io.Writer, as []answer[*masterv1.ListFailuresResponse]) error {
	var failures, skipped int
	for _, a := range as {
		failures += len(a.Resp.GetFailures())
		skipped += len(a.Resp.GetSkipped())
	}
	if failures == 0 {
		fmt.Fprintln(w, "no failures")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\t"+failureColumns)
		for _, a := range as {
			for _, f := range a.Resp.GetFailures() {
				fmt.Fprintln(tw, a.Node+"\t"+failureCells(f))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if skipped > 0 {
		fmt.Fprintln(w, skippedTitle)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\t"+skippedColumns)
		for _, a := range as {
			for _, s := range a.Resp.GetSkipped() {
				fmt.Fprintln(tw, a.Node+"\t"+skippedCells(s))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, a := range as {
		if a.Err != nil {
			fmt.Fprintf(w, "\n%s: %s (its failures are not listed)\n", a.Node, errText(a.Err))
		}
	}
	return nil
}

// printClusterSkipJSON prints the skips of the nodes that held the gfid.
func printClusterSkipJSON(w io.Writer, held []answer[*masterv1.SkipFailureResponse]) error {
	return writeJSON(w, skipDocOf(held))
}

// configKeys returns the keys the nodes reported, in the order they came
// first, and per key the value of each node that answered ("" when it does
// not know the key), in node order.
func configKeys(as []answer[*masterv1.GetConfigResponse]) (keys []string, vals map[string][]*masterv1.ConfigValue) {
	vals = map[string][]*masterv1.ConfigValue{}
	var answered []*masterv1.GetConfigResponse
	for _, a := range as {
		if a.Err == nil {
			answered = append(answered, a.Resp)
		}
	}
	for _, r := range answered {
		for _, v := range r.GetValues() {
			if _, ok := vals[v.GetKey()]; !ok {
				keys = append(keys, v.GetKey())
				vals[v.GetKey()] = make([]*masterv1.ConfigValue, len(answered))
			}
		}
	}
	for i, r := range answered {
		for _, v := range r.GetValues() {
			vals[v.GetKey()][i] = v
		}
	}
	return keys, vals
}

func configDiffers(vs []*masterv1.ConfigValue) bool {
	strs := make([]string, len(vs))
	for i, v := range vs {
		strs[i] = v.GetValue()
		if v == nil {
			strs[i] = "\x00none"
		}
	}
	_, ok := same(strs)
	return !ok
}

// perNode is the one value every node has, or each node's as NODE=VALUE.
func perNode(nodes, vs []string) string {
	if v, ok := same(vs); ok {
		return v
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = nodes[i] + "=" + v
	}
	return strings.Join(parts, " ")
}

// configRow is one line of config get's table.
type configRow struct {
	key, value, source string
	live               bool
}

// printConfigTable prints config get's table: each key, its value, where
// the value comes from (default, file, env, flag, live) and whether config
// set may change it.
func printConfigTable(w io.Writer, rows []configRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE\tLIVE")
	for _, r := range rows {
		live := "no"
		if r.live {
			live = "yes"
		}
		src := r.source
		if src == "" {
			src = "N/A" // a master that does not report it
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.key, r.value, src, live)
	}
	return tw.Flush()
}

// shownValue is a value as the table shows it: "" for an empty one.
func shownValue(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// clusterConfigJSON is `config get --json` for several masters.
type clusterConfigJSON struct {
	Nodes []configNodeJSON `json:"nodes"`
	// Differs lists the keys whose value is not the same on every node
	// that answered.
	Differs []string `json:"differs"`
}

type configNodeJSON struct {
	nodeJSON
	Values []json.RawMessage `json:"values,omitempty"`
}

func printClusterConfigJSON(w io.Writer, as []answer[*masterv1.GetConfigResponse]) error {
	doc := clusterConfigJSON{Nodes: []configNodeJSON{}, Differs: []string{}}
	for _, a := range as {
		n := configNodeJSON{nodeJSON: nodeOf(a)}
		for _, v := range a.Resp.GetValues() {
			n.Values = append(n.Values, protoJSON(v))
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	keys, vals := configKeys(as)
	for _, k := range keys {
		if configDiffers(vals[k]) {
			doc.Differs = append(doc.Differs, k)
		}
	}
	return writeJSON(w, doc)
}

// printClusterConfig prints each key once with the value every node has, or
// each node's when they differ (flagged, and listed at the end). With one
// key asked for and the same value everywhere, it prints only the value, as
// for one master.
func printClusterConfig(w, errw io.Writer, as []answer[*masterv1.GetConfigResponse], key string) error {
	var answered []string
	for _, a := range as {
		if a.Err == nil {
			answered = append(answered, a.Node)
		} else {
			fmt.Fprintf(errw, "%s: failed: %s\n", a.Node, errText(a.Err))
		}
	}
	keys, vals := configKeys(as)
	if key != "" && len(keys) == 1 && !configDiffers(vals[keys[0]]) {
		_, err := fmt.Fprintln(w, vals[keys[0]][0].GetValue())
		return err
	}
	var differ []string
	var rows []configRow
	for _, k := range keys {
		vs := vals[k]
		row := configRow{key: k}
		for _, v := range vs {
			row.live = row.live || v.GetLive()
		}
		values, sources := make([]string, len(vs)), make([]string, len(vs))
		for i, v := range vs {
			values[i], sources[i] = shownValue(v.GetValue()), v.GetSource()
			if v == nil {
				values[i], sources[i] = "(unknown key)", "(unknown key)"
			}
		}
		row.value, row.source = perNode(answered, values), perNode(answered, sources)
		if configDiffers(vs) {
			differ = append(differ, k)
			row.value = "DIFFERS: " + row.value
		}
		rows = append(rows, row)
	}
	if err := printConfigTable(w, rows); err != nil {
		return err
	}
	if len(differ) > 0 {
		fmt.Fprintf(w, "\n%d of %d keys differ between the nodes: %s\n", len(differ), len(keys), strings.Join(differ, ", "))
	}
	return nil
}
