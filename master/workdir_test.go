package master

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWorkDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	wd, err := openWorkDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer wd.close()
	if _, err := openWorkDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another georep-master") {
		t.Fatalf("second open of a work dir: err = %v", err)
	}
	id1, err := wd.volumeID()
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := wd.volumeID(); id2 != id1 {
		t.Fatalf("volume id changed: %s then %s", id1, id2)
	}
	st := stime{Data: time.Unix(100, 5), Entry: time.Unix(200, 7)}
	if err := wd.saveStime(st); err != nil {
		t.Fatal(err)
	}
	got, err := wd.loadStime()
	if err != nil || !got.Data.Equal(st.Data) || !got.Entry.Equal(st.Entry) {
		t.Fatalf("stime round trip: %v %v", got, err)
	}
}

func TestWorkDirUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := openWorkDir(filepath.Join(file, "work")); err == nil || !strings.Contains(err.Error(), "work-dir") {
		t.Fatalf("work dir beneath a file: err = %v", err)
	}
}
