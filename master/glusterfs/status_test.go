package glusterfs

import (
	"errors"
	"testing"
)

func TestParseVolumeStatus(t *testing.T) {
	m, err := ParseVolumeStatus(readTestdata(t, "volume-status.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]BrickStatus{
		"georep-gluster-host:/tmp/cap/b0": {Online: true, Pid: 1118},
		"georep-gluster-host:/tmp/cap/b1": {Online: false, Pid: -1},
	}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v (daemons left out)", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: %+v, want %+v", k, m[k], v)
		}
	}
	_, err = ParseVolumeStatus([]byte(`<cliOutput><opRet>-1</opRet><opErrno>30806</opErrno><opErrstr>Volume x does not exist</opErrstr></cliOutput>`))
	if !errors.Is(err, ErrNoVolume) {
		t.Errorf("unknown volume: %v", err)
	}
	if _, err := ParseVolumeStatus([]byte("not xml")); err == nil {
		t.Error("garbage parsed")
	}
}
