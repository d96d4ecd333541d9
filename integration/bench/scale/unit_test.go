package scale

import (
	"slices"
	"testing"
)

func TestParseCounts(t *testing.T) {
	for in, want := range map[string][]int64{
		"100k,1M,10M": {100_000, 1_000_000, 10_000_000},
		"200k":        {200_000},
		"200000":      {200_000},
		"1.5M, 2k":    {1_500_000, 2000},
		"1_000":       {1000},
	} {
		got, err := parseCounts(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCounts(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ",", "0", "-1", "1.5", "ten", "1T", "0.0000001M"} {
		if got, err := parseCounts(in); err == nil {
			t.Errorf("parseCounts(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "4k": 4096, "4KiB": 4096, "1M": 1 << 20, "1MiB": 1 << 20, "2G": 2 << 30} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5k", "k", "4x"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", in, got)
		}
	}
}

func TestLabelGroup(t *testing.T) {
	for n, want := range map[int64]string{100_000: "100k", 1_000_000: "1M", 1_500_000: "1.5M", 10_000_000: "10M", 200_000: "200k", 1234: "1234", 2000: "2k"} {
		if got := label(n); got != want {
			t.Errorf("label(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1_234_567: "1,234,567", -12345: "-12,345"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestKbField(t *testing.T) {
	status := "Name:\tgeorep-slave\nVmPeak:\t 1000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n"
	if got := kbField(status, "VmHWM:"); got != 2048<<10 {
		t.Errorf("VmHWM = %d", got)
	}
	if got := kbField(status, "VmSwap:"); got != 0 {
		t.Errorf("missing field = %d", got)
	}
}

func TestMakeTree(t *testing.T) {
	root := t.TempDir() + "/src"
	if err := makeTree(root, 25, 10, 16); err != nil {
		t.Fatal(err)
	}
	alloc, apparent, err := du(root)
	if err != nil {
		t.Fatal(err)
	}
	// 3 directories (10, 10 and 5 files) of 16 bytes each.
	dirs, _ := readDirNames(root)
	if !slices.Equal(dirs, []string{"d00000", "d00001", "d00002"}) {
		t.Errorf("directories %v", dirs)
	}
	last, _ := readDirNames(root + "/d00002")
	if len(last) != 5 || last[0] != "f0000020" {
		t.Errorf("last directory %v", last)
	}
	if apparent < 25*16 || alloc <= 0 {
		t.Errorf("du = %d allocated, %d apparent", alloc, apparent)
	}
}
