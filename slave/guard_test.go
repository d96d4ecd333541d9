package slave

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
)

// foreignRoot makes a replica root holding data georep did not create: 7
// files and a directory with a file in it.
func foreignRoot(t *testing.T) (dir, root string) {
	t.Helper()
	dir, root = scratchDirs(t)
	for i := range 7 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("precious-%d", i)), []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "albums"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "albums", "a.jpg"), []byte("jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, root
}

func handshakeReq(vol string) *slavev1.HandshakeRequest {
	return &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: vol, MasterNode: "master-host pid 1"}
}

// TestNonEmptyRootRefused: the first master of a root holding foreign data
// is refused with FailedPrecondition and the ErrorInfo detail, the message
// names the root, the count, the first names and --adopt, and nothing in
// the root changes (not even the binding).
func TestNonEmptyRootRefused(t *testing.T) {
	_, root := foreignRoot(t)
	svc := newService(t, testConfig(root), nil, testLog(t))
	client, _ := serve(t, svc)
	before := state(t, root)
	_, err := client.Handshake(t.Context(), handshakeReq(volA))
	assertStatus(t, err, codes.FailedPrecondition, "replica root "+root+" holds 8 entries that georep did not create")
	for _, want := range []string{`"albums", "precious-0", "precious-1", "precious-2", "precious-3", and 3 more`, "--adopt", "what the master lacks is then removed", volA} {
		assertStatus(t, err, codes.FailedPrecondition, want)
	}
	info := rpc.ErrorInfo(err, rpc.ReasonReplicaNotEmpty)
	if info == nil {
		t.Fatalf("no ErrorInfo %s/%s in %v", rpc.ErrorDomain, rpc.ReasonReplicaNotEmpty, status.Convert(err).Details())
	}
	if md := info.GetMetadata(); md["root"] != root || md["entries"] != "8" || !strings.HasPrefix(md["names"], "albums\nprecious-0\n") {
		t.Errorf("ErrorInfo metadata %q", md)
	}
	assertUnchanged(t, before, state(t, root))
	if _, err := os.Stat(filepath.Join(root, ".georep", "master-volume-id")); !os.IsNotExist(err) {
		t.Errorf("a refused master bound the replica: %v", err)
	}
	// Refused again: nothing is remembered of the refusal.
	_, err = client.Handshake(t.Context(), handshakeReq(volA))
	assertStatus(t, err, codes.FailedPrecondition, "holds 8 entries")

	// One foreign entry: singular, no "more".
	_, root1 := scratchDirs(t)
	if err := os.Symlink("/etc", filepath.Join(root1, "etc-link")); err != nil {
		t.Fatal(err)
	}
	client1, _ := serve(t, newService(t, testConfig(root1), nil, testLog(t)))
	_, err = client1.Handshake(t.Context(), handshakeReq(volA))
	assertStatus(t, err, codes.FailedPrecondition, `holds 1 entry that georep did not create ("etc-link")`)
}

// TestEmptyRootAccepted: a root holding nothing but .georep, or also an
// empty lost+found directory (a fresh ext4 file system's root), is bound by
// the first master without --adopt, and no adoption is recorded. A
// lost+found holding anything, or one that is not a directory, is foreign.
func TestEmptyRootAccepted(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, root string)
		refused bool
	}{
		{"empty", func(*testing.T, string) {}, false},
		{"empty lost+found", func(t *testing.T, root string) { mustMkdir(t, filepath.Join(root, "lost+found")) }, false},
		{"lost+found with a file", func(t *testing.T, root string) {
			mustMkdir(t, filepath.Join(root, "lost+found"))
			if err := os.WriteFile(filepath.Join(root, "lost+found", "#1234"), []byte("recovered"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"lost+found a file", func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "lost+found"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"lost+found a symlink to an empty directory", func(t *testing.T, root string) {
			mustMkdir(t, filepath.Join(root, "..", "elsewhere"))
			if err := os.Symlink("../elsewhere", filepath.Join(root, "lost+found")); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, root := scratchDirs(t)
			tt.prepare(t, root)
			client, _ := serve(t, newService(t, testConfig(root), nil, testLog(t)))
			_, err := client.Handshake(t.Context(), handshakeReq(volA))
			if tt.refused {
				assertStatus(t, err, codes.FailedPrecondition, `holds 1 entry that georep did not create ("lost+found")`)
				return
			}
			if err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			if _, err := os.Stat(filepath.Join(root, adoptedFile)); !os.IsNotExist(err) {
				t.Errorf("an adoption was recorded for an empty root: %v", err)
			}
		})
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptTakesOver: with --adopt the first master binds a non-empty root,
// the adoption is recorded in .georep/adopted (master volume, node, time,
// what was there), and the master may then remove the foreign data. A
// restart without --adopt keeps serving it: the root is bound now.
func TestAdoptTakesOver(t *testing.T) {
	_, root := foreignRoot(t)
	cfg := testConfig(root)
	cfg.Adopt = true
	clock := &testClock{now: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	client, _ := serve(t, newService(t, cfg, clock.Now, testLog(t)))
	resp, err := client.Handshake(t.Context(), handshakeReq(volA))
	if err != nil {
		t.Fatalf("Handshake with adopt: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, ".georep", "master-volume-id")); err != nil || strings.TrimSpace(string(b)) != volA {
		t.Fatalf("binding %q, %v; want %s", b, err, volA)
	}
	b, err := os.ReadFile(filepath.Join(root, adoptedFile))
	if err != nil {
		t.Fatalf("adoption not recorded: %v", err)
	}
	var rec adoptionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v\n%s", adoptedFile, err, b)
	}
	if rec.MasterVolume != volA || rec.MasterNode != "master-host pid 1" || !rec.Time.Equal(clock.Now()) || rec.Entries != 8 || len(rec.Names) != shownForeign || rec.Names[0] != "albums" {
		t.Errorf("adoption record %+v", rec)
	}
	// The adopting master removes what its source lacks.
	ctx := withSession(t.Context(), resp.GetSessionId())
	if _, err := client.Purge(ctx, &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("precious-0")}); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "precious-0")); !os.IsNotExist(err) {
		t.Errorf("precious-0 not purged: %v", err)
	}

	// Restarted without --adopt: bound to A, A is served; the record stays.
	clock2 := &testClock{now: clock.Now().Add(time.Hour)}
	client2, _ := serve(t, newService(t, testConfig(root), clock2.Now, testLog(t)))
	if _, err := client2.Handshake(t.Context(), handshakeReq(volA)); err != nil {
		t.Fatalf("bound master after the adoption, without --adopt: %v", err)
	}
	if b2, _ := os.ReadFile(filepath.Join(root, adoptedFile)); string(b2) != string(b) {
		t.Errorf("adoption record rewritten:\n%s", b2)
	}
}

// TestBoundRootNeverRefused: a root bound to master volume A that holds
// A's data (and anything else) serves A on every handshake, restarts
// included; with --accept-new-master another volume B takes it over
// without --adopt (what is there is the old master's replica, georep's own
// data), and no adoption is recorded.
func TestBoundRootNeverRefused(t *testing.T) {
	fx := newFixture(t, nil) // bound to A, holding d/, d/sub/, d/g, f
	if err := os.WriteFile(filepath.Join(fx.root, "put-there-later"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fx.handshake(t, volA) // a later pass
	client, _ := serve(t, newService(t, testConfig(fx.root), nil, testLog(t)))
	if _, err := client.Handshake(t.Context(), handshakeReq(volA)); err != nil {
		t.Fatalf("bound master after a restart: %v", err)
	}
	cfg := testConfig(fx.root)
	cfg.AcceptNewMaster = true
	client2, _ := serve(t, newService(t, cfg, nil, testLog(t)))
	if _, err := client2.Handshake(t.Context(), handshakeReq(volB)); err != nil {
		t.Fatalf("B with --accept-new-master on A's replica: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(fx.root, ".georep", "master-volume-id")); err != nil || strings.TrimSpace(string(b)) != volB {
		t.Errorf("binding %q, %v; want %s", b, err, volB)
	}
	if _, err := os.Stat(filepath.Join(fx.root, adoptedFile)); !os.IsNotExist(err) {
		t.Errorf("a hand-over was recorded as an adoption: %v", err)
	}
}

// TestNonEmptyRefusedGetsNoSession: a refused first master does not take the
// lease: a master of an empty replica elsewhere is unaffected, and the
// refused one gets no session id to work with.
func TestNonEmptyRefusedGetsNoSession(t *testing.T) {
	_, root := foreignRoot(t)
	svc := newService(t, testConfig(root), nil, testLog(t))
	client, _ := serve(t, svc)
	if _, err := client.Handshake(t.Context(), handshakeReq(volA)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Handshake: %v", err)
	}
	if err := svc.sessions.heldByOther(volB); err != nil {
		t.Errorf("a refused master holds the lease: %v", err)
	}
	_, err := client.EntryOps(withSession(t.Context(), ""), &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{
		{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: gfid.New().String(), Pargfid: rootG, Name: []byte("x"), Mode: unix.S_IFDIR | 0o755},
	}})
	assertStatus(t, err, codes.FailedPrecondition, "no session")
}
