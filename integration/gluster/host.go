package gluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	// Host is the name the harness maps to 127.0.0.1 in /etc/hosts and uses
	// for bricks and as the volfile server.
	Host = "georep-gluster-host"

	loopback    = "127.0.0.1"
	hostsFile   = "/etc/hosts"
	glusterdVol = "/etc/glusterfs/glusterd.vol"
	bindOption  = "transport.socket.bind-address"
	backupExt   = ".georep-orig"
)

// ensureHostsEntry makes name resolve to addr through the hosts file at
// path: it appends "addr name" unless a line already names it. A line naming
// it with another address is an error (the host is not ours to change).
func ensureHostsEntry(path, name, addr string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || !slices.Contains(f[1:], name) {
			continue
		}
		if f[0] != addr {
			return fmt.Errorf("%s maps %s to %s, the GlusterFS harness needs %s", path, name, f[0], addr)
		}
		return nil
	}
	entry := addr + " " + name + " # georep integration/gluster\n"
	if len(b) > 0 && b[len(b)-1] != '\n' {
		entry = "\n" + entry
	}
	// Append in place: /etc/hosts is often a bind mount that cannot be
	// replaced by a rename.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(entry); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}

// ensureBindAddress makes the glusterd volfile at path bind the management
// daemon to addr: it inserts the option before the first end-volume unless
// the file sets one already, and keeps the original next to it (once). A
// different bind address already set is an error.
func ensureBindAddress(path, addr string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	end := -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) >= 3 && f[0] == "option" && f[1] == bindOption {
			if f[2] != addr {
				return fmt.Errorf("%s binds glusterd to %s, the GlusterFS harness needs %s", path, f[2], addr)
			}
			return nil
		}
		if f[0] == "end-volume" && end < 0 {
			end = i
		}
	}
	if end < 0 {
		return fmt.Errorf("%s: no end-volume line, not a glusterd volfile", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := writeNew(path+backupExt, b, fi.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	lines = slices.Insert(lines, end, "    option "+bindOption+" "+addr)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".glusterd.vol-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(lines, "\n")); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeNew writes data to a file that must not exist yet: an existing backup
// is the original and is kept.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
