package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georep/georep/integration/harness"
)

// siteDirs makes an empty source and replica directory, and names a work
// dir, under the test's temporary directory.
func siteDirs(t *testing.T) (src, replica, work string) {
	t.Helper()
	base := t.TempDir()
	src, replica, work = filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return src, replica, work
}

// promtool is Prometheus's promtool (Debian's package prometheus, which
// make deps installs), or a skip saying so.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus: make deps); the alert rules and the metrics' names are not checked")
	}
	return p
}

// TestMetricsAlertRules checks deploy/prometheus/georep-alerts.yml and runs
// its unit tests (each alert firing on the series that should fire it,
// silent on the others).
func TestMetricsAlertRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "georep-alerts.yml"}, {"test", "rules", "georep-alerts.test.yml"}} {
		cmd := exec.CommandContext(t.Context(), pt, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestMetricsScrape runs a master and a slave over mutual TLS with
// /metrics, lets them replicate, and scrapes both: the families README's
// "Metrics" lists are there with their labels, the families they replaced
// are gone, and promtool check metrics (Prometheus's lint of names, units
// and types) finds nothing to say about either scrape.
func TestMetricsScrape(t *testing.T) {
	harness.RequireRsync(t)
	src, replica, work := siteDirs(t)
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte("content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slaveMetrics, masterMetrics, statusAddr := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	slave := harness.StartSlave(t, replica, "--metrics-listen", slaveMetrics) // mutual TLS
	m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--change-interval", "500ms",
		"--status-listen", statusAddr, "--metrics-listen", masterMetrics)...)
	waitStatus(t, m, []string{"--master", statusAddr}, "an Active worker that has synced", activeSynced)

	b := fmt.Sprintf(`brick=%q`, src)
	mm := scrape(t, masterMetrics)
	for _, want := range []string{
		`georep_master_last_synced_timestamp_seconds{` + b + `} `,
		`georep_master_synced_files_total{` + b + `} 2`,
		`georep_master_synced_bytes_total{` + b + `} 24`,
		`georep_master_synced_entries_total{` + b + `} `,
		`georep_master_synced_deletes_total{` + b + `} 0`,
		`georep_master_worker_state{` + b + `,state="Active"} 1`,
		`georep_master_worker_state{` + b + `,state="Faulty"} 0`,
		`georep_master_worker_state{` + b + `,state="Initializing"} 0`,
		`georep_master_session_connected{` + b + `} 1`,
		`georep_master_audit_differences_total{` + b + `,kind="content"} 0`,
		`georep_tls_certificate_expiry_timestamp_seconds{role="cert",subject="georep-master"} `,
		`georep_tls_certificate_expiry_timestamp_seconds{role="ca",subject=`,
		`grpc_client_handled_total{grpc_code="OK",grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"} `,
		`grpc_client_handling_seconds_count{grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"} `,
		`georep_build_info{goversion=`,
	} {
		if !strings.Contains(mm, want) {
			t.Errorf("master /metrics lacks %s", want)
		}
	}
	sm := scrape(t, slaveMetrics)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"} `,
		`grpc_server_handling_seconds_bucket{grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary",le=`,
		`grpc_server_started_total{grpc_method="Purge",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"} `,
		`georep_tls_certificate_expiry_timestamp_seconds{role="cert",subject="127.0.0.1"} `,
		`georep_build_info{goversion=`,
	} {
		if !strings.Contains(sm, want) {
			t.Errorf("slave /metrics lacks %s", want)
		}
	}
	for _, gone := range []string{"georep_master_lag_seconds", "georep_master_synced_total", "georep_master_data_files_total",
		"georep_master_data_bytes_total", "georep_slave_rpc_duration_seconds"} {
		if strings.Contains(mm+sm, gone+"{") || strings.Contains(mm+sm, gone+" ") {
			t.Errorf("/metrics still has %s", gone)
		}
	}

	pt := promtool(t)
	for name, text := range map[string]string{"master": mm, "slave": sm} {
		cmd := exec.CommandContext(t.Context(), pt, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
			t.Errorf("promtool check metrics on the %s's /metrics: %v\n%s", name, err, out.String())
		}
	}
}
