package replica

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

func TestWriteFiles(t *testing.T) {
	r, root := newReplica(t)
	f, h := gfid.New(), gfid.New()
	mustApply(t, r, create(f, gfid.Root, "f", 0o600), create(h, gfid.Root, "h", 0o644), link(h, gfid.Root, "h2"))
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	if uid == 0 {
		uid, gid = 1234, 5678
	}
	mt := time.Date(2003, 4, 5, 6, 7, 8, 9000, time.UTC)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: more than one write on some kernels
	fails := r.WriteFiles(t.Context(), []ops.FileData{
		{GFID: f, Data: []byte("hello"), Mode: 0o100755, UID: uid, GID: gid, Mtime: mt},
		{GFID: h, Data: big, Mode: 0o640, UID: uid, GID: gid, Mtime: mt},
	})
	if len(fails) != 0 {
		t.Fatalf("failures: %+v", fails)
	}
	for _, c := range []struct {
		name string
		want []byte
		mode uint32
	}{{"f", []byte("hello"), 0o755}, {"h", big, 0o640}, {"h2", big, 0o640}} {
		p := filepath.Join(root, c.name)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %d bytes, want %d (%v)", c.name, len(got), len(c.want), err)
		}
		st := lstat(t, p)
		if st.Mode&0o7777 != c.mode || st.Uid != uid || st.Gid != gid || st.Mtim != unix.NsecToTimespec(mt.UnixNano()) {
			t.Errorf("%s: mode %o owner %d:%d mtime %v", c.name, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim)
		}
	}
	if xattrGFID(t, r, filepath.Join(root, "f")) != f {
		t.Error("gfid attribute lost")
	}

	// A rewrite of the same size with the same mtime lands (no quick check),
	// and a shorter content truncates.
	if fails := r.WriteFiles(t.Context(), []ops.FileData{
		{GFID: f, Data: []byte("HELLO"), Mode: 0o755, UID: uid, GID: gid, Mtime: mt},
		{GFID: h, Data: []byte("x"), Mode: 0o640, UID: uid, GID: gid, Mtime: mt},
	}); len(fails) != 0 {
		t.Fatalf("failures: %+v", fails)
	}
	for name, want := range map[string]string{"f": "HELLO", "h": "x", "h2": "x"} {
		if got, _ := os.ReadFile(filepath.Join(root, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if st := lstat(t, filepath.Join(root, "f")); st.Mtim != unix.NsecToTimespec(mt.UnixNano()) {
		t.Errorf("f: mtime %v after a same-mtime rewrite", st.Mtim)
	}
	// Empty content empties the file.
	if fails := r.WriteFiles(t.Context(), []ops.FileData{{GFID: f, Mode: 0o644, UID: uid, GID: gid, Mtime: mt}}); len(fails) != 0 {
		t.Fatalf("failures: %+v", fails)
	}
	if st := lstat(t, filepath.Join(root, "f")); st.Size != 0 || st.Mode&0o7777 != 0o644 {
		t.Errorf("f: size %d mode %o, want 0 and 644", st.Size, st.Mode&0o7777)
	}
}

func TestWriteFilesSetuidAfterChown(t *testing.T) {
	requireRoot(t)
	r, root := newReplica(t)
	f := gfid.New()
	mustApply(t, r, create(f, gfid.Root, "f", 0o644))
	if fails := r.WriteFiles(t.Context(), []ops.FileData{{GFID: f, Data: []byte("#!/bin/true\n"), Mode: 0o6755, UID: 2000, GID: 2000}}); len(fails) != 0 {
		t.Fatal(fails)
	}
	if st := lstat(t, filepath.Join(root, "f")); st.Mode&0o7777 != 0o6755 || st.Uid != 2000 || st.Gid != 2000 {
		t.Errorf("mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
	}
}

// TestWriteFilesHostile: nothing but a regular file of the data tree is ever
// written, nothing is created, and nothing outside the replica changes.
func TestWriteFilesHostile(t *testing.T) {
	r, root := newReplica(t)
	types := allTypes(t, r, gfid.Root, "t-")
	outside := filepath.Join(filepath.Dir(root), "outside")
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())

	// Entries planted in the data tree behind the replica's back: a symlink
	// leading out of the replica and a fifo (whose open must not block).
	planted := map[string]gfid.GFID{"symlink": gfid.New(), "fifo": gfid.New()}
	for what, g := range planted {
		p := dataPath(root, g)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		var err error
		if what == "symlink" {
			err = os.Symlink(filepath.Join(outside, "sentinel"), p)
		} else {
			err = unix.Mkfifo(p, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		g    gfid.GFID
		want unix.Errno
	}{
		{"zero gfid", gfid.GFID{}, unix.EINVAL},
		{"unknown gfid", gfid.New(), unix.ENOENT},
		{"root", gfid.Root, unix.EINVAL},
		{"park", gfid.Park, unix.EINVAL},
		{"directory", types[ops.TypeDir], unix.ENOENT},
		{"symlink", types[ops.TypeSymlink], unix.ENOENT},
		{"fifo", types[ops.TypeFifo], unix.ENOENT},
		{"socket", types[ops.TypeSocket], unix.ENOENT},
		{"planted symlink in the data tree", planted["symlink"], unix.EINVAL},
		{"planted fifo in the data tree", planted["fifo"], unix.EINVAL},
	}
	if g, ok := types[ops.TypeChar]; ok {
		tests = append(tests, struct {
			name string
			g    gfid.GFID
			want unix.Errno
		}{"character device", g, unix.ENOENT})
	}
	before := snapshot(t, filepath.Dir(root))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan []ops.Failure, 1)
			go func() {
				done <- r.WriteFiles(t.Context(), []ops.FileData{{GFID: tt.g, Data: []byte("evil"), Mode: 0o777, UID: uid, GID: gid}})
			}()
			var fails []ops.Failure
			select {
			case fails = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("WriteFiles blocked")
			}
			if len(fails) != 1 || fails[0].Errno != tt.want || fails[0].Index != 0 {
				t.Fatalf("failures %+v, want one with %v", fails, tt.want)
			}
			if tt.want == unix.ENOENT && !strings.Contains(fails[0].Message, "not a regular file known to the replica") {
				t.Errorf("message %q", fails[0].Message)
			}
		})
	}
	assertSameTree(t, before, snapshot(t, filepath.Dir(root)))
	if b, _ := os.ReadFile(filepath.Join(outside, "sentinel")); string(b) != "keep" {
		t.Fatalf("sentinel outside the replica changed: %q", b)
	}
	// The regular files of the data tree are all the index ever held there:
	// WriteFiles created nothing (no entry for the unknown gfid).
	for typ, g := range types {
		assertIndexPlace(t, root, typ, g)
	}
	if exists(dataPath(root, tests[1].g)) || exists(linksPath(root, tests[1].g)) {
		t.Error("an entry was created for the unknown gfid")
	}
}

func TestWriteFilesPartialBatchAndCancel(t *testing.T) {
	r, root := newReplica(t)
	a, b := gfid.New(), gfid.New()
	mustApply(t, r, create(a, gfid.Root, "a", 0o644), create(b, gfid.Root, "b", 0o644))
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	fails := r.WriteFiles(t.Context(), []ops.FileData{
		{GFID: a, Data: []byte("A"), Mode: 0o644, UID: uid, GID: gid},
		{GFID: gfid.New(), Data: []byte("?"), Mode: 0o644, UID: uid, GID: gid},
		{GFID: b, Data: []byte("B"), Mode: 0o644, UID: uid, GID: gid},
	})
	if len(fails) != 1 || fails[0].Index != 1 || fails[0].Errno != unix.ENOENT {
		t.Fatalf("failures %+v, want index 1 ENOENT", fails)
	}
	for name, want := range map[string]string{"a": "A", "b": "B"} {
		if got, _ := os.ReadFile(filepath.Join(root, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fails = r.WriteFiles(ctx, []ops.FileData{{GFID: a, Data: []byte("late"), Mode: 0o644, UID: uid, GID: gid}})
	if len(fails) != 1 || fails[0].Errno != unix.ECANCELED {
		t.Fatalf("failures %+v, want ECANCELED", fails)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "a")); string(got) != "A" {
		t.Errorf("a = %q after a canceled write", got)
	}
}

// TestWriteFilesClearACL: ClearACL (sync-acls, a master file without an
// ACL) removes the ACL an earlier rsync -A gave the replica's file, and
// the mode is the master's; without it the ACL stays.
func TestWriteFilesClearACL(t *testing.T) {
	r, root := newReplica(t)
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	for _, tt := range []struct {
		name    string
		clear   bool
		wantACL bool
	}{{"cleared", true, false}, {"kept", false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := gfid.New()
			mustApply(t, r, create(f, gfid.Root, tt.name, 0o640))
			p := filepath.Join(root, tt.name)
			if out, err := exec.Command("setfacl", "-m", "u:12345:rw", p).CombinedOutput(); err != nil {
				t.Skipf("setfacl: %v %s (no ACLs on this filesystem)", err, out)
			}
			if fails := r.WriteFiles(t.Context(), []ops.FileData{{GFID: f, Data: []byte("x"), Mode: 0o604, UID: uid, GID: gid,
				ClearACL: tt.clear}}); len(fails) != 0 {
				t.Fatalf("failures: %+v", fails)
			}
			_, err := unix.Getxattr(p, "system.posix_acl_access", nil)
			if hasACL := err == nil; hasACL != tt.wantACL {
				t.Errorf("ACL after WriteFiles: %v (%v), want %v", hasACL, err, tt.wantACL)
			}
			if st := lstat(t, p); tt.clear && st.Mode&0o7777 != 0o604 {
				t.Errorf("mode %o after clearing the ACL, want 604", st.Mode&0o7777)
			}
		})
	}
	// A file that never had one: nothing to clear, no failure.
	f := gfid.New()
	mustApply(t, r, create(f, gfid.Root, "none", 0o644))
	if fails := r.WriteFiles(t.Context(), []ops.FileData{{GFID: f, Mode: 0o644, UID: uid, GID: gid, ClearACL: true}}); len(fails) != 0 {
		t.Fatalf("failures: %+v", fails)
	}
}
