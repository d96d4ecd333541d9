package slave

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/slave/lease"
)

// Over gRPC: a second worker of a replica set is refused with LEASE_HELD
// (the holder named), a worker of another set is served beside it, the
// holder's Release lets the second one in with the next epoch and the
// set's stime, and the released session applies nothing more.
func TestHandshakeLeases(t *testing.T) {
	fx := newFixture(t, nil)
	store, err := lease.Open(fx.root, "s1")
	if err != nil {
		t.Fatal(err)
	}
	fx.svc.sessions.leases = store
	hs := func(set, worker string) (*slavev1.HandshakeResponse, error) {
		return fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion,
			MasterVolumeId: volA, MasterNode: worker + " pid 1", ReplicaSet: set, WorkerId: worker})
	}
	a, err := hs("0", "m1:/b1")
	if err != nil {
		t.Fatal(err)
	}
	if a.GetLeaseEpoch() != 1 {
		t.Fatalf("epoch %d, want 1", a.GetLeaseEpoch())
	}
	_, err = hs("0", "m2:/b1")
	if status.Code(err) != codes.Aborted {
		t.Fatalf("second worker of set 0: %v, want Aborted", err)
	}
	info := rpc.ErrorInfo(err, rpc.ReasonLeaseHeld)
	if info == nil || info.GetMetadata()["worker"] != "m1:/b1" || info.GetMetadata()["epoch"] != "1" {
		t.Fatalf("refusal's ErrorInfo %v, want LEASE_HELD naming m1:/b1, epoch 1", info)
	}
	if _, err := hs("1", "m2:/b2"); err != nil {
		t.Fatalf("worker of set 1 beside set 0's: %v", err)
	}
	actx := withSession(t.Context(), a.GetSessionId())
	if _, err := fx.client.SetXtime(actx, &slavev1.SetXtimeRequest{Gfid: rootG, VolumeId: volA,
		Xtime: &slavev1.Timespec{Sec: 1_700_000_100, Nsec: 7}}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.client.Release(actx, &slavev1.ReleaseRequest{Reason: "stepping down"}); err != nil {
		t.Fatal(err)
	}
	b, err := hs("0", "m2:/b1")
	if err != nil {
		t.Fatalf("after the holder released: %v", err)
	}
	if b.GetLeaseEpoch() != 2 || b.GetSetStimeSec() != 1_700_000_100 || b.GetSetStimeNsec() != 7 {
		t.Fatalf("new holder: epoch %d stime %d.%d, want 2 and the old holder's stime", b.GetLeaseEpoch(), b.GetSetStimeSec(), b.GetSetStimeNsec())
	}
	_, err = fx.client.EntryOps(actx, &slavev1.EntryOpsRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("released session's EntryOps: %v, want FailedPrecondition", err)
	}
	evs, err := lease.ReadLog(fx.root, "0")
	if err != nil || len(evs) != 3 {
		t.Fatalf("lease log %v %+v, want acquired, released, acquired", err, evs)
	}
}
