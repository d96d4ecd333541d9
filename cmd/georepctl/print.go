package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

const timeLayout = "2006-01-02 15:04:05"

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// parseTime reads a checkpoint time: RFC 3339, "YYYY-MM-DD HH:MM:SS" in
// local time, or seconds since the epoch (gsyncd's form).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(timeLayout, s, time.Local); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("checkpoint time %q: give now, RFC 3339 (2026-01-02T15:04:05Z), %q in local time, or seconds since the epoch", s, timeLayout)
}

func formatTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "N/A"
	}
	return t.AsTime().Local().Format(timeLayout)
}

var stateNames = map[masterv1.WorkerState]string{
	masterv1.WorkerState_WORKER_STATE_INITIALIZING: "Initializing...",
	masterv1.WorkerState_WORKER_STATE_ACTIVE:       "Active",
	masterv1.WorkerState_WORKER_STATE_PASSIVE:      "Passive",
	masterv1.WorkerState_WORKER_STATE_FAULTY:       "Faulty",
	masterv1.WorkerState_WORKER_STATE_PAUSED:       "Paused",
	masterv1.WorkerState_WORKER_STATE_STOPPED:      "Stopped",
}

var crawlNames = map[masterv1.CrawlStatus]string{
	masterv1.CrawlStatus_CRAWL_STATUS_HYBRID:    "Hybrid Crawl",
	masterv1.CrawlStatus_CRAWL_STATUS_HISTORY:   "History Crawl",
	masterv1.CrawlStatus_CRAWL_STATUS_CHANGELOG: "Changelog Crawl",
}

func orNA(s string) string {
	if s == "" {
		return "N/A"
	}
	return s
}

// statusColumns are gsyncd's `status detail` columns, then lag and rates.
const statusColumns = "MASTER NODE\tMASTER BRICK\tSLAVE\tSTATUS\tCRAWL STATUS\tLAST_SYNCED\tENTRY\tDATA\tMETA\tFAILURES\t" +
	"CHECKPOINT TIME\tCHECKPOINT COMPLETED\tCHECKPOINT COMPLETION TIME\tLAG\tFILES/S\tBYTES/S"

// workerCells is one worker's row of statusColumns, tab-separated.
func workerCells(s *masterv1.WorkerStatus) string {
	cpDone := "N/A"
	if s.GetCheckpointTime() != nil {
		cpDone = "No"
		if s.GetCheckpointCompleted() {
			cpDone = "Yes"
		}
	}
	lag := "N/A"
	if s.GetLastSynced() != nil {
		lag = (time.Duration(s.GetLagSeconds()) * time.Second).String()
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.1f\t%s",
		s.GetMasterNode(), s.GetBrick(), s.GetSlave(), orNA(stateNames[s.GetState()]), orNA(crawlNames[s.GetCrawlStatus()]),
		formatTime(s.GetLastSynced()), s.GetEntryPending(), s.GetDataPending(), s.GetMetaPending(), s.GetFailures(),
		formatTime(s.GetCheckpointTime()), cpDone, formatTime(s.GetCheckpointCompletionTime()),
		lag, s.GetFilesPerSecond(), humanBytes(s.GetBytesPerSecond())+"/s")
}

// printStatus prints gsyncd's `status detail` columns, then rates, then
// per worker why it is not Active and how far a changelog in flight is.
func printStatus(w io.Writer, resp *masterv1.GetStatusResponse, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, statusColumns)
	for _, s := range resp.GetWorkers() {
		fmt.Fprintln(tw, workerCells(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.GetPaused() {
		fmt.Fprintln(w, "\nthe session is paused (georepctl resume lets it go on)")
	}
	for _, s := range resp.GetWorkers() {
		if r := s.GetReason(); r != "" {
			fmt.Fprintf(w, "\n%s %s: %s\n", s.GetBrick(), stateNames[s.GetState()], r)
		}
		if p := s.GetProgress(); p != nil {
			fmt.Fprintf(w, "\n%s: %s\n", s.GetBrick(), progressText(p, now))
		}
		if a := s.GetAudit(); a.GetStarted() != nil {
			fmt.Fprintf(w, "\n%s: %s\n", s.GetBrick(), auditText(a))
		}
	}
	return nil
}

// auditText describes a worker's last (or running) audit.
func auditText(a *masterv1.AuditStatus) string {
	what := "audit"
	if a.GetContent() {
		what = "audit with contents"
	}
	var b strings.Builder
	switch {
	case a.GetRunning():
		fmt.Fprintf(&b, "%s running since %s: ", what, formatTime(a.GetStarted()))
	default:
		fmt.Fprintf(&b, "last %s %s, took %s: ", what, formatTime(a.GetStarted()),
			(time.Duration(a.GetDurationSeconds()*1000) * time.Millisecond).String())
	}
	fmt.Fprintf(&b, "%d entries checked", a.GetEntriesChecked())
	if a.GetContent() {
		fmt.Fprintf(&b, ", %d files hashed (%s)", a.GetFilesHashed(), humanBytes(float64(a.GetBytesHashed())))
	}
	fmt.Fprintf(&b, ", %d differences", a.GetDifferences())
	if kinds := a.GetByKind(); len(kinds) > 0 {
		var parts []string
		for k, n := range kinds {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, n))
			}
		}
		slices.Sort(parts)
		if len(parts) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(&b, ", %d repaired", a.GetRepaired())
	if e := a.GetError(); e != "" {
		fmt.Fprintf(&b, "; stopped short: %s", e)
	}
	if n := a.GetNext(); n != nil && !a.GetRunning() {
		fmt.Fprintf(&b, "; next %s", formatTime(n))
	}
	return b.String()
}

func progressText(p *masterv1.Progress, now time.Time) string {
	parts := []string{
		fmt.Sprintf("entries %d/%d", p.GetEntriesDone(), p.GetEntriesTotal()),
		fmt.Sprintf("files %d/%d", p.GetFilesDone(), p.GetFilesTotal()),
		fmt.Sprintf("%s/%s", humanBytes(float64(p.GetBytesDone())), humanBytes(float64(p.GetBytesTotal()))),
	}
	if st := p.GetStarted(); st != nil {
		if el := now.Sub(st.AsTime()).Seconds(); el > 0 {
			parts = append(parts, fmt.Sprintf("%.0f files/s", float64(p.GetFilesDone())/el),
				humanBytes(float64(p.GetBytesDone())/el)+"/s")
		}
	}
	if eta := p.GetEtaSeconds(); eta > 0 {
		parts = append(parts, "ETA "+(time.Duration(math.Round(eta))*time.Second).String())
	}
	return "in progress: " + strings.Join(parts, ", ")
}

func describeCheckpoint(cp *masterv1.Checkpoint) string {
	switch {
	case cp == nil:
		return "no checkpoint"
	case cp.GetCompleted():
		return fmt.Sprintf("checkpoint %s (set %s): completed at %s", formatTime(cp.GetTime()), formatTime(cp.GetSetTime()),
			formatTime(cp.GetCompletionTime()))
	}
	return fmt.Sprintf("checkpoint %s (set %s): not completed", formatTime(cp.GetTime()), formatTime(cp.GetSetTime()))
}

var classNames = map[masterv1.FailureClass]string{
	masterv1.FailureClass_FAILURE_CLASS_TRANSIENT: "transient",
	masterv1.FailureClass_FAILURE_CLASS_PERMANENT: "permanent",
}

func className(c masterv1.FailureClass) string {
	if n, ok := classNames[c]; ok {
		return n
	}
	return "transient" // a master that does not classify retries everything
}

func printFailures(w io.Writer, resp *masterv1.ListFailuresResponse) error {
	if len(resp.GetFailures()) == 0 {
		fmt.Fprintln(w, "no failures")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, failureColumns)
		for _, f := range resp.GetFailures() {
			fmt.Fprintln(tw, failureCells(f))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(resp.GetSkipped()) == 0 {
		return nil
	}
	fmt.Fprintln(w, skippedTitle)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, skippedColumns)
	for _, s := range resp.GetSkipped() {
		fmt.Fprintln(tw, skippedCells(s))
	}
	return tw.Flush()
}

const (
	failureColumns = "BRICK\tGFID\tPATH\tCLASS\tSINCE\tATTEMPTS\tREASON"
	skippedColumns = "BRICK\tGFID\tPATH\tCLASS\tSKIPPED\tBY\tREASON"
	skippedTitle   = "\nskipped by the operator (not queued when they fail; georepctl failures retry queues them again):"
)

// failureCells is one failure's row of failureColumns, tab-separated.
func failureCells(f *masterv1.Failure) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%s", f.GetBrick(), f.GetGfid(), orNA(f.GetPath()), className(f.GetClass()),
		formatTime(f.GetSince()), f.GetAttempts(), f.GetReason())
}

// skippedCells is one skipped failure's row of skippedColumns, tab-separated.
func skippedCells(s *masterv1.SkippedFailure) string {
	f := s.GetFailure()
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", f.GetBrick(), f.GetGfid(), orNA(f.GetPath()), className(f.GetClass()),
		formatTime(s.GetTime()), s.GetBy(), s.GetReason())
}

func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	exp := 0
	for n >= unit && exp < 6 {
		n /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", n, "KMGTPE"[exp-1])
}
