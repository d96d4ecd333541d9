package lease

import (
	"errors"
	"testing"
	"time"
)

// Two stores on one directory stand for two slave processes: open file
// description locks tell them apart within one test process as they do
// between processes.
func TestLeaseExclusive(t *testing.T) {
	root := t.TempDir()
	s1, err := Open(root, "s1")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(root, "s2")
	if err != nil {
		t.Fatal(err)
	}
	a, err := s1.Acquire("0", "m1:/b1", "m1 pid 1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Record().Epoch != 1 {
		t.Fatalf("first epoch %d, want 1", a.Record().Epoch)
	}
	var held *HeldError
	if _, err := s2.Acquire("0", "m2:/b1", "m2 pid 2"); !errors.As(err, &held) || held.Holder.Worker != "m1:/b1" {
		t.Fatalf("second holder through another slave: %v, want held by m1:/b1", err)
	}
	if _, err := s1.Acquire("0", "m2:/b1", "m2 pid 2"); !errors.As(err, &held) {
		t.Fatalf("second holder through the same slave: %v, want held", err)
	}
	// Another set is another lease.
	if l, err := s2.Acquire("1", "m2:/b2", "m2 pid 2"); err != nil {
		t.Fatalf("another set: %v", err)
	} else {
		l.Release("test")
	}
	if err := a.Check(); err != nil {
		t.Fatalf("holder's check: %v", err)
	}
	stime := time.Unix(1700000000, 5).UTC()
	if err := a.SetStime(stime); err != nil {
		t.Fatal(err)
	}
	a.Release("stepping down")
	if err := a.Check(); !errors.Is(err, ErrLost) {
		t.Fatalf("check after release: %v, want ErrLost", err)
	}
	b, err := s2.Acquire("0", "m2:/b1", "m2 pid 2")
	if err != nil {
		t.Fatal(err)
	}
	if r := b.Record(); r.Epoch != 2 || !r.Stime.Equal(stime) || r.Slave != "s2" {
		t.Fatalf("new holder's record %+v, want epoch 2, the stime kept, slave s2", r)
	}
	if err := a.SetStime(stime.Add(time.Hour)); !errors.Is(err, ErrLost) {
		t.Fatalf("old holder's stime: %v, want ErrLost", err)
	}
	evs, err := ReadLog(root, "0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Event+" "+ev.Worker+" "+ev.Slave)
	}
	want := []string{"acquired m1:/b1 s1", "released m1:/b1 s1", "acquired m2:/b1 s2"}
	if len(got) != len(want) {
		t.Fatalf("log %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("log %q, want %q", got, want)
		}
	}
}

// A holder whose epoch another took (its lock dropped by the volume and
// taken by another slave node in between) has lost the lease, even if the
// lock is free again when it checks.
func TestLeaseLostToAnotherEpoch(t *testing.T) {
	root := t.TempDir()
	s1, _ := Open(root, "s1")
	s2, _ := Open(root, "s2")
	a, err := s1.Acquire("0", "m1:/b1", "m1")
	if err != nil {
		t.Fatal(err)
	}
	// What the volume does when s1 is cut off from the brick: the lock goes.
	if err := DropLock(a); err != nil {
		t.Fatal(err)
	}
	f2, err := s2.Acquire("0", "m2:/b1", "m2")
	if err != nil {
		t.Fatal(err)
	}
	f2.Release("done")
	if err := a.Check(); !errors.Is(err, ErrLost) {
		t.Fatalf("check after another epoch: %v, want ErrLost", err)
	}
}

func TestLeaseSetNames(t *testing.T) {
	s, _ := Open(t.TempDir(), "s1")
	for _, set := range []string{"../x", "a/b", "x\x00", ".."} {
		if _, err := s.Acquire(set, "w", "m"); err == nil {
			t.Errorf("set %q accepted", set)
		}
	}
}
