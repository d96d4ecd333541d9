package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		if c := b.Current(); c != b.Next() {
			t.Fatalf("Current %v is not what Next returned", c)
		}
		got = append(got, b.Current())
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after each Next: %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Errorf("after Reset: %v, want 1s", d)
	}
}

func TestWait(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: time.Hour}
	start := time.Now()
	if !b.Wait(t.Context(), nil) {
		t.Fatal("Wait reported ctx done")
	}
	if el := time.Since(start); el < 10*time.Millisecond {
		t.Errorf("waited %v, want at least 10ms", el)
	}
	if b.Current() != 20*time.Millisecond {
		t.Errorf("next wait %v, want 20ms", b.Current())
	}

	// A wake ends the wait early and still counts as a wait.
	b = Backoff{Initial: time.Hour, Max: time.Hour}
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if !b.Wait(t.Context(), wake) {
		t.Fatal("woken Wait reported ctx done")
	}

	// ctx ends it and is reported.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if b.Wait(ctx, nil) {
		t.Error("Wait reported ctx live after cancel")
	}
}
