package main

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

// The JSON documents of `status --json`, `failures --json`, `checkpoint
// --json` and `audit --json`, for one master and for several alike (one
// master is a session of one node). Their schemas are in schema/ (embedded
// in the tests, published in the README): every field is always present
// (null when there is nothing: a time not reached, no checkpoint, no
// progress); counters are JSON numbers; times are RFC 3339 in UTC; states
// and crawl statuses are gsyncd's words, as in the tables.

// schemaVersion is the documents' schema_version: it changes when a field
// changes meaning or goes away (adding a field does not change it).
const schemaVersion = 1

// jsonTime is a time in RFC 3339 (UTC, with fractional seconds when it has
// them), or null.
type jsonTime struct{ t *timestamppb.Timestamp }

func (j jsonTime) MarshalJSON() ([]byte, error) {
	if j.t == nil {
		return []byte("null"), nil
	}
	return json.Marshal(j.t.AsTime().UTC().Format(time.RFC3339Nano))
}

func tsJSON(t *timestamppb.Timestamp) jsonTime { return jsonTime{t} }

// statusDoc is `status --json`.
type statusDoc struct {
	SchemaVersion int `json:"schema_version"`
	// MasterVolume and Slave: the nodes' when they agree, "" otherwise.
	MasterVolume string `json:"master_volume"`
	Slave        string `json:"slave"`
	// Paused: every node that answered is paused.
	Paused bool `json:"paused"`
	// Checkpoint is the session's: complete when every node's is.
	Checkpoint *checkpointDoc `json:"checkpoint"`
	Nodes      []nodeDoc      `json:"nodes"`
	Workers    []workerDoc    `json:"workers"`
}

// nodeDoc is one master as status --json shows it.
type nodeDoc struct {
	nodeJSON
	MasterVolume string         `json:"master_volume"`
	Slave        string         `json:"slave"`
	Paused       bool           `json:"paused"`
	Checkpoint   *checkpointDoc `json:"checkpoint"`
	Workers      int            `json:"workers"`
	Build        *buildDoc      `json:"build"`
}

type buildDoc struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Time      string `json:"time"`
	GoVersion string `json:"go_version"`
}

type checkpointDoc struct {
	Time           jsonTime `json:"time"`
	SetTime        jsonTime `json:"set_time"`
	Completed      bool     `json:"completed"`
	CompletionTime jsonTime `json:"completion_time"`
}

// workerDoc is one worker: gsyncd's status detail fields, then georep's.
type workerDoc struct {
	Node                     string       `json:"node"`
	MasterNode               string       `json:"master_node"`
	Brick                    string       `json:"brick"`
	Slave                    string       `json:"slave"`
	State                    string       `json:"state"`
	CrawlStatus              string       `json:"crawl_status"`
	LastSynced               jsonTime     `json:"last_synced"`
	EntryPending             int64        `json:"entry_pending"`
	DataPending              int64        `json:"data_pending"`
	MetaPending              int64        `json:"meta_pending"`
	DeletesPending           int64        `json:"deletes_pending"`
	Failures                 int64        `json:"failures"`
	CheckpointTime           jsonTime     `json:"checkpoint_time"`
	CheckpointCompleted      bool         `json:"checkpoint_completed"`
	CheckpointCompletionTime jsonTime     `json:"checkpoint_completion_time"`
	LagSeconds               float64      `json:"lag_seconds"`
	BytesPerSecond           float64      `json:"bytes_per_second"`
	FilesPerSecond           float64      `json:"files_per_second"`
	Reason                   string       `json:"reason"`
	FilesSynced              int64        `json:"files_synced"`
	BytesSynced              int64        `json:"bytes_synced"`
	EntriesSynced            int64        `json:"entries_synced"`
	DeletesSynced            int64        `json:"deletes_synced"`
	ReplicaSet               string       `json:"replica_set"`
	Progress                 *progressDoc `json:"progress"`
	Audit                    *auditDoc    `json:"audit"`
}

type progressDoc struct {
	EntriesDone  int64    `json:"entries_done"`
	EntriesTotal int64    `json:"entries_total"`
	FilesDone    int64    `json:"files_done"`
	FilesTotal   int64    `json:"files_total"`
	BytesDone    int64    `json:"bytes_done"`
	BytesTotal   int64    `json:"bytes_total"`
	ETASeconds   float64  `json:"eta_seconds"`
	Started      jsonTime `json:"started"`
}

type auditDoc struct {
	Started         jsonTime         `json:"started"`
	Finished        jsonTime         `json:"finished"`
	DurationSeconds float64          `json:"duration_seconds"`
	Content         bool             `json:"content"`
	EntriesChecked  int64            `json:"entries_checked"`
	FilesHashed     int64            `json:"files_hashed"`
	BytesHashed     int64            `json:"bytes_hashed"`
	Differences     int64            `json:"differences"`
	Repaired        int64            `json:"repaired"`
	ByKind          map[string]int64 `json:"by_kind"`
	Running         bool             `json:"running"`
	Error           string           `json:"error"`
	Next            jsonTime         `json:"next"`
}

// stateWord is a worker state in gsyncd's words (the table's, without its
// "..."); "" when the master did not say.
func stateWord(s masterv1.WorkerState) string {
	if s == masterv1.WorkerState_WORKER_STATE_INITIALIZING {
		return "Initializing"
	}
	return stateNames[s]
}

func checkpointOf(cp *masterv1.Checkpoint) *checkpointDoc {
	if cp == nil {
		return nil
	}
	return &checkpointDoc{Time: tsJSON(cp.GetTime()), SetTime: tsJSON(cp.GetSetTime()), Completed: cp.GetCompleted(),
		CompletionTime: tsJSON(cp.GetCompletionTime())}
}

func buildOf(b *masterv1.BuildInfo) *buildDoc {
	if b == nil {
		return nil
	}
	return &buildDoc{Version: b.GetVersion(), Commit: b.GetCommit(), Time: b.GetTime(), GoVersion: b.GetGoVersion()}
}

func workerOf(node string, s *masterv1.WorkerStatus) workerDoc {
	w := workerDoc{
		Node: node, MasterNode: s.GetMasterNode(), Brick: s.GetBrick(), Slave: s.GetSlave(),
		State: stateWord(s.GetState()), CrawlStatus: crawlNames[s.GetCrawlStatus()], LastSynced: tsJSON(s.GetLastSynced()),
		EntryPending: s.GetEntryPending(), DataPending: s.GetDataPending(), MetaPending: s.GetMetaPending(),
		DeletesPending: s.GetDeletesPending(), Failures: s.GetFailures(),
		CheckpointTime: tsJSON(s.GetCheckpointTime()), CheckpointCompleted: s.GetCheckpointCompleted(),
		CheckpointCompletionTime: tsJSON(s.GetCheckpointCompletionTime()),
		LagSeconds:               s.GetLagSeconds(), BytesPerSecond: s.GetBytesPerSecond(), FilesPerSecond: s.GetFilesPerSecond(),
		Reason: s.GetReason(), FilesSynced: s.GetFilesSynced(), BytesSynced: s.GetBytesSynced(),
		EntriesSynced: s.GetEntriesSynced(), DeletesSynced: s.GetDeletesSynced(), ReplicaSet: s.GetReplicaSet(),
	}
	if p := s.GetProgress(); p != nil {
		w.Progress = &progressDoc{EntriesDone: p.GetEntriesDone(), EntriesTotal: p.GetEntriesTotal(),
			FilesDone: p.GetFilesDone(), FilesTotal: p.GetFilesTotal(), BytesDone: p.GetBytesDone(), BytesTotal: p.GetBytesTotal(),
			ETASeconds: p.GetEtaSeconds(), Started: tsJSON(p.GetStarted())}
	}
	if a := s.GetAudit(); a != nil {
		kinds := map[string]int64{}
		for k, n := range a.GetByKind() {
			kinds[k] = n
		}
		w.Audit = &auditDoc{Started: tsJSON(a.GetStarted()), Finished: tsJSON(a.GetFinished()),
			DurationSeconds: a.GetDurationSeconds(), Content: a.GetContent(), EntriesChecked: a.GetEntriesChecked(),
			FilesHashed: a.GetFilesHashed(), BytesHashed: a.GetBytesHashed(), Differences: a.GetDifferences(),
			Repaired: a.GetRepaired(), ByKind: kinds, Running: a.GetRunning(), Error: a.GetError(), Next: tsJSON(a.GetNext())}
	}
	return w
}

// failuresDoc is `failures --json`.
type failuresDoc struct {
	SchemaVersion int          `json:"schema_version"`
	Nodes         []nodeJSON   `json:"nodes"`
	Failures      []failureDoc `json:"failures"`
	Skipped       []skippedDoc `json:"skipped"`
}

type failureDoc struct {
	Node     string   `json:"node"`
	Brick    string   `json:"brick"`
	Gfid     string   `json:"gfid"`
	Path     string   `json:"path"`
	Reason   string   `json:"reason"`
	Data     bool     `json:"data"`
	Since    jsonTime `json:"since"`
	Last     jsonTime `json:"last"`
	Attempts int32    `json:"attempts"`
	Class    string   `json:"class"`
	Errno    string   `json:"errno"`
	Side     string   `json:"side"`
}

type skippedDoc struct {
	Node    string     `json:"node"`
	Failure failureDoc `json:"failure"`
	Time    jsonTime   `json:"time"`
	By      string     `json:"by"`
	Reason  string     `json:"reason"`
}

func failureOf(node string, f *masterv1.Failure) failureDoc {
	return failureDoc{Node: node, Brick: f.GetBrick(), Gfid: f.GetGfid(), Path: f.GetPath(), Reason: f.GetReason(),
		Data: f.GetData(), Since: tsJSON(f.GetSince()), Last: tsJSON(f.GetLast()), Attempts: f.GetAttempts(),
		Class: className(f.GetClass()), Errno: f.GetErrno(), Side: f.GetSide()}
}

func skippedOf(node string, s *masterv1.SkippedFailure) skippedDoc {
	return skippedDoc{Node: node, Failure: failureOf(node, s.GetFailure()), Time: tsJSON(s.GetTime()), By: s.GetBy(), Reason: s.GetReason()}
}

func failuresDocOf(as []answer[*masterv1.ListFailuresResponse]) failuresDoc {
	doc := failuresDoc{SchemaVersion: schemaVersion, Nodes: []nodeJSON{}, Failures: []failureDoc{}, Skipped: []skippedDoc{}}
	for _, a := range as {
		doc.Nodes = append(doc.Nodes, nodeOf(a))
		for _, f := range a.Resp.GetFailures() {
			doc.Failures = append(doc.Failures, failureOf(a.Node, f))
		}
		for _, s := range a.Resp.GetSkipped() {
			doc.Skipped = append(doc.Skipped, skippedOf(a.Node, s))
		}
	}
	return doc
}

func statusDocOf(as []answer[*masterv1.GetStatusResponse]) statusDoc {
	doc := statusDoc{SchemaVersion: schemaVersion, Nodes: []nodeDoc{}, Workers: []workerDoc{}}
	var vols, slaves []string
	answered, paused := 0, 0
	for _, a := range as {
		n := nodeDoc{nodeJSON: nodeOf(a)}
		if a.Err == nil {
			r := a.Resp
			answered++
			if r.GetPaused() {
				paused++
			}
			n.MasterVolume, n.Slave, n.Paused = r.GetMasterVolume(), r.GetSlave(), r.GetPaused()
			n.Checkpoint, n.Build = checkpointOf(r.GetCheckpoint()), buildOf(r.GetBuild())
			n.Workers = len(r.GetWorkers())
			vols, slaves = append(vols, r.GetMasterVolume()), append(slaves, r.GetSlave())
			for _, w := range r.GetWorkers() {
				doc.Workers = append(doc.Workers, workerOf(a.Node, w))
			}
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	doc.Paused = answered > 0 && paused == answered
	doc.MasterVolume, _ = same(vols)
	doc.Slave, _ = same(slaves)
	doc.Checkpoint = checkpointOf(sessionCheckpoint(as))
	return doc
}

// skipDoc is `failures skip --json`: per node whose queue held the gfid,
// what was skipped and the skip logs it went to.
type skipDoc struct {
	SchemaVersion int           `json:"schema_version"`
	Skips         []nodeSkipDoc `json:"skips"`
}

type nodeSkipDoc struct {
	Node    string       `json:"node"`
	Skipped []skippedDoc `json:"skipped"`
	Logs    []string     `json:"logs"`
}

func skipDocOf(held []answer[*masterv1.SkipFailureResponse]) skipDoc {
	doc := skipDoc{SchemaVersion: schemaVersion, Skips: []nodeSkipDoc{}}
	for _, a := range held {
		n := nodeSkipDoc{Node: a.Node, Skipped: []skippedDoc{}, Logs: append([]string{}, a.Resp.GetLogs()...)}
		for _, s := range a.Resp.GetSkipped() {
			n.Skipped = append(n.Skipped, skippedOf(a.Node, s))
		}
		doc.Skips = append(doc.Skips, n)
	}
	return doc
}

// auditDocOf is `audit --json`: the workers after the audit was asked for
// (or, with --wait, ended).
func auditDocOf(as []answer[*masterv1.AuditResponse]) workersDoc {
	doc := workersDoc{SchemaVersion: schemaVersion, Nodes: []nodeJSON{}, Workers: []workerDoc{}}
	for _, a := range as {
		doc.Nodes = append(doc.Nodes, nodeOf(a))
		for _, w := range a.Resp.GetWorkers() {
			doc.Workers = append(doc.Workers, workerOf(a.Node, w))
		}
	}
	return doc
}

// workersDoc is a list of workers with the nodes asked.
type workersDoc struct {
	SchemaVersion int         `json:"schema_version"`
	Nodes         []nodeJSON  `json:"nodes"`
	Workers       []workerDoc `json:"workers"`
}
