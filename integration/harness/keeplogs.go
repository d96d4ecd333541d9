package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// keepLogsSeq numbers the kept logs of one test process in the order they
// were written.
var keepLogsSeq atomic.Int64

// KeepLog writes a process's whole output to the directory named by
// GEOREP_E2E_KEEP_LOGS, when it is set, as <test>/<seq>-<what>.log, and
// logs where: a failing test shows only the end of each log, which is too
// little to analyse a flaky replication after the fact. Nothing is written
// when the variable is empty.
func KeepLog(t testing.TB, what, log string) {
	dir := os.Getenv("GEOREP_E2E_KEEP_LOGS")
	if dir == "" {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("GEOREP_E2E_KEEP_LOGS: %v", err)
		return
	}
	p := filepath.Join(dir, fmt.Sprintf("%03d-%s.log", keepLogsSeq.Add(1), filepath.Base(what)))
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Logf("GEOREP_E2E_KEEP_LOGS: %v", err)
		return
	}
	t.Logf("%s log kept in %s", filepath.Base(what), p)
}
