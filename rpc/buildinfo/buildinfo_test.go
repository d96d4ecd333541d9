package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", i.GoVersion, runtime.Version())
	}
	for name, v := range map[string]string{"Version": i.Version, "Commit": i.Commit, "Time": i.Time} {
		if v == "" {
			t.Errorf("%s is empty; an unstamped build says (devel) or unknown", name)
		}
	}
	s := i.String("georep-test")
	if !strings.HasPrefix(s, "georep-test "+i.Version+" (commit "+i.Commit) {
		t.Errorf("String = %q", s)
	}
}

func TestCollector(t *testing.T) {
	i := Info{Version: "v1.2.3", Commit: "abc-dirty", Time: "2026-01-02T03:04:05Z", GoVersion: "go1.99"}
	reg := prometheus.NewRegistry()
	reg.MustRegister(i.Collector("georep-slave"))
	want := `# HELP georep_build_info Build of the running georep binary: always 1, the build in the labels.
# TYPE georep_build_info gauge
georep_build_info{goversion="go1.99",program="georep-slave",revision="abc-dirty",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "georep_build_info"); err != nil {
		t.Error(err)
	}
}
