package gluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureHostsEntry(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	orig := "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# 10.0.0.1 " + Host + "\n127.0.0.1 vm" // no final newline
	if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call finds the line and writes nothing
		if err := ensureHostsEntry(p, Host, loopback); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	want := orig + "\n127.0.0.1 " + Host + " # georep integration/gluster\n"
	if string(b) != want {
		t.Errorf("hosts:\n%s\nwant:\n%s", b, want)
	}

	if err := os.WriteFile(p, []byte("10.1.2.3 other "+Host+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ensureHostsEntry(p, Host, loopback); err == nil || !strings.Contains(err.Error(), "10.1.2.3") {
		t.Errorf("name mapped elsewhere: err %v", err)
	}
}

const volfile = `volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport-type socket
#   option transport.socket.bind-address 10.0.0.1
    option max-port  60999
end-volume
`

func TestEnsureBindAddress(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "glusterd.vol")
	if err := os.WriteFile(p, []byte(volfile), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call finds the option and writes nothing
		if err := ensureBindAddress(p, loopback); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	want := strings.Replace(volfile, "end-volume", "    option transport.socket.bind-address 127.0.0.1\nend-volume", 1)
	if string(b) != want {
		t.Errorf("volfile:\n%s\nwant:\n%s", b, want)
	}
	if backup, _ := os.ReadFile(p + backupExt); string(backup) != volfile {
		t.Errorf("backup:\n%s", backup)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left %d files in %s", len(ents), dir)
	}

	other := strings.Replace(volfile, "end-volume", "    option transport.socket.bind-address 10.0.0.1\nend-volume", 1)
	if err := os.WriteFile(p, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ensureBindAddress(p, loopback); err == nil || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Errorf("bound elsewhere: err %v", err)
	}
}
