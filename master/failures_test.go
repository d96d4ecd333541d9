package master

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

func TestClassify(t *testing.T) {
	const (
		create = ops.OpCreate
		mkdir  = ops.OpMkdir
		rename = ops.OpRename
		unlink = ops.OpUnlink
	)
	for _, tc := range []struct {
		c    cause
		want failClass
	}{
		// Retrying cannot help.
		{cause{errno: syscall.EINVAL, side: sideSlave, kind: kindEntry, op: create}, classPermanent},       // name or gfid validation
		{cause{errno: syscall.EINVAL, side: sideSlave, kind: kindEntry, op: mkdir}, classPermanent},        // mode validation
		{cause{errno: syscall.EINVAL, side: sideSlave, kind: kindMeta}, classPermanent},                    // xattr name validation
		{cause{errno: syscall.ENAMETOOLONG, side: sideSlave, kind: kindEntry, op: create}, classPermanent}, //
		{cause{errno: syscall.ENAMETOOLONG, side: sideSource, kind: kindData}, classPermanent},             //
		{cause{errno: syscall.EILSEQ, side: sideSlave, kind: kindEntry, op: create}, classPermanent},       // a name the slave's filesystem cannot encode
		{cause{errno: syscall.EOPNOTSUPP, side: sideSlave, kind: kindMeta}, classPermanent},                // no xattrs on the slave's filesystem
		{cause{errno: syscall.ENOTSUP, side: sideSlave, kind: kindData}, classPermanent},                   //
		{cause{errno: syscall.EPERM, side: sideSlave, kind: kindEntry, op: create}, classPermanent},        // a name the slave's access path reserves (.gfid, .georep)
		{cause{errno: syscall.EPERM, side: sideSlave, kind: kindMeta}, classPermanent},                     // an xattr the slave reserves
		{cause{errno: syscall.EPERM, side: sideSlave, kind: kindEntry, op: unlink}, classPermanent},        //
		{cause{errno: syscall.E2BIG, side: sideSlave, kind: kindMeta}, classPermanent},                     // an xattr too large for the slave
		{cause{errno: syscall.ENOENT, side: sideSlave, kind: kindEntry, op: create, parentPermanent: true}, classPermanent},
		// Retrying may help.
		{cause{errno: syscall.ENOSPC, side: sideSlave, kind: kindData}, classTransient},
		{cause{errno: syscall.EDQUOT, side: sideSlave, kind: kindEntry, op: create}, classTransient},
		{cause{errno: syscall.EIO, side: sideSlave, kind: kindMeta}, classTransient},
		{cause{errno: syscall.ETIMEDOUT, side: sideSlave, kind: kindData}, classTransient},
		{cause{errno: syscall.ENOENT, side: sideSlave, kind: kindEntry, op: create}, classTransient}, // a race: the parent comes
		{cause{errno: syscall.ENOENT, side: sideSource, kind: kindData}, classTransient},
		{cause{errno: syscall.ESTALE, side: sideSlave, kind: kindEntry, op: rename}, classTransient},
		{cause{errno: syscall.EEXIST, side: sideSlave, kind: kindEntry, op: create}, classTransient},
		{cause{errno: syscall.EACCES, side: sideSource, kind: kindData}, classTransient}, // an operator may fix the source
		{cause{errno: syscall.EPERM, side: sideSource, kind: kindData}, classTransient},
		{cause{errno: syscall.EACCES, side: sideSlave, kind: kindEntry, op: create}, classTransient},
		{cause{errno: syscall.EINVAL, side: sideSlave, kind: kindEntry, op: rename}, classTransient}, // into its own subtree: the slave is behind
		{cause{errno: syscall.EINVAL, side: sideSlave, kind: kindData}, classTransient},              // the slave's gfid of another type: a later pass fixes it
		{cause{errno: syscall.EINVAL, side: sideSource, kind: kindData}, classTransient},
		{cause{errno: syscall.E2BIG, side: sideSource, kind: kindData}, classTransient},
		{cause{errno: syscall.EROFS, side: sideSlave, kind: kindEntry, op: create}, classTransient},
		{cause{kind: kindData}, classTransient}, // rsync, a call that failed whole, a connection or session refused
		{cause{}, classTransient},
	} {
		if got := classify(tc.c); got != tc.want {
			t.Errorf("classify(%s %s %s %s parentPermanent=%v) = %s, want %s", errnoSymbol(tc.c.errno), tc.c.side, tc.c.kind, tc.c.op,
				tc.c.parentPermanent, got, tc.want)
		}
	}
}

func TestDataCause(t *testing.T) {
	_, statErr := os.Lstat(filepath.Join(t.TempDir(), "missing"))
	for _, tc := range []struct {
		err  error
		want cause
	}{
		{&slaveErrno{errno: syscall.EPERM, err: errors.New("slave could not write")}, cause{errno: syscall.EPERM, side: sideSlave, kind: kindData}},
		{fmt.Errorf("stage x: %w", statErr), cause{errno: syscall.ENOENT, side: sideSource, kind: kindData}},
		{errors.New("rsync: exit status 23"), cause{kind: kindData}},
		{status.Error(codes.Unavailable, "connection refused"), cause{kind: kindData}},
	} {
		if got := dataCause(tc.err); got != tc.want {
			t.Errorf("dataCause(%v) = %+v, want %+v", tc.err, got, tc.want)
		}
	}
}

// A queue file written before failures had a class loads; its entries are
// transient.
func TestFailureQueueWithoutClass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failures")
	g := gfid.New()
	old := fmt.Sprintf(`[{"gfid": %q, "dir": ".", "name": "f", "data": false, "reason": "CREATE: permission denied",
		"since": "2026-01-01T00:00:00Z", "last": "2026-01-01T00:01:00Z", "attempts": 2}]`, g)
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := loadFailures(path)
	if err != nil {
		t.Fatal(err)
	}
	l := q.list()
	if len(l) != 1 || l[0].GFID != g || l[0].class() != classTransient || l[0].Attempts != 2 {
		t.Fatalf("queue = %+v", l)
	}
	if q.permanentOnly() != nil {
		t.Error("an old entry counts as permanent")
	}
}

// reservingSlave refuses, every time, the entry ops named in refuse ("MKDIR d").
type reservingSlave struct {
	*fakeSlave
	refuse map[string]ops.Failure
}

func (r *reservingSlave) EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error) {
	var fails []ops.Failure
	var pass []ops.Entry
	var index []int
	for i, e := range entries {
		if f, ok := r.refuse[fmt.Sprintf("%s %s", e.Op, e.Name)]; ok {
			fails = append(fails, ops.Failure{Index: i, Errno: f.Errno, Message: f.Message})
			continue
		}
		pass, index = append(pass, e), append(index, i)
	}
	more, err := r.fakeSlave.EntryOps(ctx, pass)
	for i := range more {
		more[i].Index = index[more[i].Index]
	}
	return append(fails, more...), err
}

// The slave refuses a directory's name for good (EPERM, reserved): the
// directory is a permanent failure, and so is the file in it, whose
// ENOENT comes from it; another file's ENOENT race stays transient.
func TestEntryFailuresClassified(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.failures = mustQueue(t, tw.wd.path("failures"))
	rs := &reservingSlave{fakeSlave: tw.slave, refuse: map[string]ops.Failure{
		"MKDIR .gfid": {Errno: syscall.EPERM, Message: `reserved name ".gfid" in the volume root`},
		"CREATE g":    {Errno: syscall.ENOSPC, Message: "no space left on device"},
	}}
	tw.worker.slave = rs
	tw.write(t, ".gfid/f", "1")
	tw.write(t, "g", "2")
	tw.write(t, "ok", "3")
	out := tw.crawlAndProcess(t)
	classes := map[string]failClass{}
	for g, why := range out.failed {
		classes[why] = classify(out.causes[g])
	}
	want := map[string]failClass{
		`ENTRY_OP_MKDIR: reserved name ".gfid" in the volume root`: classPermanent,
		"ENTRY_OP_CREATE: no space left on device":                 classTransient,
	}
	for why, c := range want {
		if classes[why] != c {
			t.Errorf("%q: class %q, want %q (all: %v)", why, classes[why], c, classes)
		}
	}
	var child string
	for why := range classes {
		if strings.Contains(why, "its parent failed permanently") {
			child = why
		}
	}
	if child == "" || classes[child] != classPermanent || len(out.failed) != 3 {
		t.Errorf("the file in the refused directory: %v", classes)
	}
}

func mustQueue(t *testing.T, path string) *failureQueue {
	t.Helper()
	q, err := loadFailures(path)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// The operator skips a permanent failure: it leaves the queue, is logged in
// the skip log with who and why, no longer holds stime, is not queued again
// when it fails again, and is forgotten once it syncs; retry queues the
// skipped ones again.
func TestSkipFailure(t *testing.T) {
	m, ws := testMonitor(t, DefaultConfig(), "/src")
	w := ws[0]
	w.failures = mustQueue(t, w.wd.path("failures"))
	bad, other := gfid.New(), gfid.New()
	perm := newFailure(bad, "d", ".gfid", false, `ENTRY_OP_MKDIR: reserved name ".gfid"`,
		cause{errno: syscall.EPERM, side: sideSlave, kind: kindEntry, op: ops.OpMkdir})
	var partial *partialError
	if err := w.settle([]*failure{perm}, true); !errors.As(err, &partial) {
		t.Fatalf("settle with a failure: %v, want a partialError (stime held)", err)
	}
	if perm := w.failures.permanentOnly(); len(perm) != 1 || perm[0].GFID != bad {
		t.Fatalf("permanentOnly = %v", perm)
	}

	if _, err := m.skipFailure(other, peerIdentity{Transport: "unix"}, "why"); !errors.Is(err, errNotQueued) {
		t.Errorf("skip of an unknown gfid: %v, want errNotQueued", err)
	}
	uid, gid, pid := uint32(1000), uint32(1000), int32(4242)
	by := peerIdentity{Transport: "unix", UID: &uid, GID: &gid, PID: &pid}
	skips, err := m.skipFailure(bad, by, "the slave volume reserves .gfid; renamed on the source next week")
	if err != nil || len(skips) != 1 {
		t.Fatalf("skip: %v %v", skips, err)
	}
	if w.failures.len() != 0 || !w.failures.isSkipped(bad) {
		t.Fatalf("after the skip: queue %d, skipped %v", w.failures.len(), w.failures.isSkipped(bad))
	}
	// Durable: the queue file without it, the skip set with it.
	q2 := mustQueue(t, w.wd.path("failures"))
	if q2.len() != 0 || !q2.isSkipped(bad) {
		t.Fatalf("reloaded: queue %d, skipped %v", q2.len(), q2.isSkipped(bad))
	}
	if _, err := m.skipFailure(bad, by, "again"); !errors.Is(err, errNotQueued) || !strings.Contains(err.Error(), "skipped already") {
		t.Errorf("second skip: %v", err)
	}
	// The skip log line.
	b, err := os.ReadFile(w.wd.path("skipped.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("skip log: %q", b)
	}
	var line struct {
		Time time.Time `json:"time"`
		By   struct {
			Transport string
			UID, PID  int
		}
		GFID    string `json:"gfid"`
		Path    string `json:"path"`
		Failure string `json:"failure_reason"`
		Class   string `json:"class"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.GFID != bad.String() || line.Path != "d/.gfid" || line.Class != "permanent" || line.By.UID != 1000 || line.By.PID != 4242 ||
		line.By.Transport != "unix" || !strings.Contains(line.Failure, "reserved") || !strings.Contains(line.Reason, "next week") || line.Time.IsZero() {
		t.Errorf("skip log line: %s", lines[0])
	}

	// It fails again: not queued, and the pass settles (stime may advance).
	again := *perm
	if err := w.settle([]*failure{&again}, true); err != nil {
		t.Fatalf("settle after the skip: %v, want nil", err)
	}
	if w.failures.len() != 0 || w.stats.Failures != 0 {
		t.Errorf("queued again: %d (stats %d)", w.failures.len(), w.stats.Failures)
	}
	// Another failure still holds stime.
	tr := newFailure(other, ".", "x", true, "data not shipped: rsync", cause{kind: kindData})
	if err := w.settle([]*failure{tr}, true); !errors.As(err, &partial) {
		t.Errorf("settle with another failure: %v", err)
	}
	if w.failures.permanentOnly() != nil {
		t.Error("permanentOnly with a transient failure queued")
	}
	if err := w.settle(nil, true); err != nil {
		t.Fatal(err)
	}

	// failures lists it as skipped.
	_, sk, err := m.failuresAndSkips()
	if err != nil || len(sk) != 1 || sk[0].GFID != bad || sk[0].Why == "" || !strings.Contains(sk[0].By, "uid=1000") {
		t.Fatalf("skips listed: %+v %v", sk, err)
	}

	// retry queues it again.
	queued, unskipped, err := m.retryFailures()
	if err != nil || queued != 1 || unskipped != 1 || w.failures.isSkipped(bad) {
		t.Fatalf("retry: queued %d unskipped %d err %v", queued, unskipped, err)
	}
	if l := w.failures.list(); len(l) != 1 || l[0].GFID != bad || l[0].Dir != "d" || l[0].Name != ".gfid" {
		t.Fatalf("queue after retry: %+v", l)
	}

	// Skipped again, then it syncs once: forgotten.
	if _, err := m.skipFailure(bad, by, "again"); err != nil {
		t.Fatal(err)
	}
	forgot, err := w.failures.synced([]gfid.GFID{other, bad})
	if err != nil || len(forgot) != 1 || w.failures.isSkipped(bad) || mustQueue(t, w.wd.path("failures")).isSkipped(bad) {
		t.Fatalf("synced: forgot %v, err %v", forgot, err)
	}
}

// The status service over its UNIX socket: the skip log names the caller
// by uid and pid (SO_PEERCRED); a missing reason and an unknown gfid are
// refused.
func TestSkipFailureOverSocket(t *testing.T) {
	cfg := DefaultConfig()
	m, ws := testMonitor(t, cfg, "/src")
	w := ws[0]
	w.failures = mustQueue(t, w.wd.path("failures"))
	g := gfid.New()
	if err := w.failures.update([]*failure{newFailure(g, ".", "f", false, "META: xattr reserved",
		cause{errno: syscall.EPERM, side: sideSlave, kind: kindMeta})}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := m.start(ctx, &wg); err != nil {
		t.Fatal(err)
	}
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: "unix://" + m.wd.path("status.sock"), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := masterv1.NewMasterServiceClient(conn)
	if _, err := c.SkipFailure(ctx, &masterv1.SkipFailureRequest{Gfid: g.String(), Reason: "  "}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty reason: %v", err)
	}
	if _, err := c.SkipFailure(ctx, &masterv1.SkipFailureRequest{Gfid: gfid.New().String(), Reason: "x"}); status.Code(err) != codes.NotFound ||
		!strings.Contains(err.Error(), "not in the failure queue") {
		t.Errorf("unknown gfid: %v", err)
	}
	resp, err := c.SkipFailure(ctx, &masterv1.SkipFailureRequest{Gfid: g.String(), Reason: "accepted"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSkipped()) != 1 || resp.GetSkipped()[0].GetFailure().GetClass() != masterv1.FailureClass_FAILURE_CLASS_PERMANENT ||
		resp.GetLogs()[0] != w.wd.path("skipped.log") {
		t.Fatalf("response: %v", resp)
	}
	want := fmt.Sprintf("uid=%d gid=%d pid=%d", os.Getuid(), os.Getgid(), os.Getpid())
	if by := resp.GetSkipped()[0].GetBy(); by != "unix "+want {
		t.Errorf("by = %q, want %q", by, "unix "+want)
	}
	b, err := os.ReadFile(w.wd.path("skipped.log"))
	if err != nil || !strings.Contains(string(b), fmt.Sprintf(`"uid":%d`, os.Getuid())) || !strings.Contains(string(b), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Errorf("skip log: %s %v", b, err)
	}
	lf, err := c.ListFailures(ctx, &masterv1.ListFailuresRequest{})
	if err != nil || len(lf.GetFailures()) != 0 || len(lf.GetSkipped()) != 1 || lf.GetSkipped()[0].GetReason() != "accepted" {
		t.Errorf("ListFailures: %v %v", lf, err)
	}
}

// A TCP caller is named by its address and the identities of its verified
// client certificate.
func TestPeerOfTCP(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "ops-admin"}, DNSNames: []string{"ops.example"}}
	ctx := peer.NewContext(t.Context(), &peer.Peer{
		Addr:     &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}},
	})
	id := peerOf(ctx)
	if id.Transport != "tcp" || id.Addr != "192.0.2.7:40000" || strings.Join(id.TLS, ",") != "ops-admin,ops.example" || id.UID != nil {
		t.Errorf("peerOf = %+v", id)
	}
	if s := id.String(); s != "tcp 192.0.2.7:40000 tls=ops-admin,ops.example" {
		t.Errorf("String() = %q", s)
	}
	plain := peerOf(peer.NewContext(t.Context(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}))
	if plain.String() != "tcp 127.0.0.1:1" || plain.TLS != nil {
		t.Errorf("plaintext peer: %+v", plain)
	}
}
