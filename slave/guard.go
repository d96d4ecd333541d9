package slave

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/atomicfile"
)

// adoptedFile records the adoption of a non-empty root (JSON, adoptionRecord).
const adoptedFile = ".georep/adopted"

// shownForeign is how many foreign names a refusal names.
const shownForeign = 5

// errNotEmpty refuses the first master of a replica root that holds entries
// other than georep's own state: its first pass would remove whatever its
// source lacks.
type errNotEmpty struct {
	root   string
	count  int
	names  []string // the first few, sorted
	master string   // the master volume refused
}

func (e *errNotEmpty) Error() string {
	more := ""
	if e.count > len(e.names) {
		more = fmt.Sprintf(", and %d more", e.count-len(e.names))
	}
	return fmt.Sprintf("replica root %s holds %d %s that georep did not create (%s%s) and is not bound to any master volume yet: "+
		"the first pass of master volume %s would remove everything its source lacks, so it is refused; "+
		"check that %s is the directory meant to hold the replica, then start georep-slave with --adopt "+
		"to let this master take it over (what the master lacks is then removed)",
		e.root, e.count, plural(e.count, "entry", "entries"), quoteNames(e.names), more, e.master, e.root)
}

// grpcStatus is the refusal as a FailedPrecondition with an ErrorInfo.
func (e *errNotEmpty) grpcStatus() error {
	return rpc.StatusWithInfo(codes.FailedPrecondition, e.Error(), rpc.ReasonReplicaNotEmpty, map[string]string{
		"root":    e.root,
		"entries": strconv.Itoa(e.count),
		"names":   strings.Join(e.names, "\n"),
	})
}

// adoptionRecord is what .georep/adopted holds: who took a non-empty root
// over, when, and what was there.
type adoptionRecord struct {
	MasterVolume string    `json:"master_volume"`
	MasterNode   string    `json:"master_node,omitempty"`
	Time         time.Time `json:"time"`
	Entries      int       `json:"entries"`
	Names        []string  `json:"names"`
}

// foreignEntries counts the entries of the replica root that are not
// georep's own: everything but .georep, the names in own (a GlusterFS
// volume's internal directories) and an empty lost+found directory (what
// mkfs leaves on a fresh ext2/3/4 file system: no data, and refusing it
// would make --adopt a reflex on every dedicated disk). It returns the
// first shownForeign names, sorted.
func foreignEntries(r *os.Root, own map[string]bool) (int, []string, error) {
	d, err := r.Open(".")
	if err != nil {
		return 0, nil, fmt.Errorf("open replica root: %w", err)
	}
	defer d.Close()
	count := 0
	var all []string
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if name == metaDirName || own[name] {
				continue
			}
			if name == "lost+found" {
				empty, err := emptyDir(r, name)
				if err != nil {
					return 0, nil, err
				}
				if empty {
					continue
				}
			}
			count++
			all = append(all, name)
			if len(all) > 4*shownForeign {
				slices.Sort(all)
				all = all[:shownForeign]
			}
		}
		if errors.Is(err, io.EOF) || err == nil && len(names) == 0 {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("read replica root: %w", err)
		}
	}
	slices.Sort(all)
	if len(all) > shownForeign {
		all = all[:shownForeign]
	}
	return count, all, nil
}

// metaDirName is georep's directory in the replica root.
const metaDirName = ".georep"

// emptyDir reports whether name is a directory (not a symlink) with no
// entries.
func emptyDir(r *os.Root, name string) (bool, error) {
	fi, err := r.Lstat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, fmt.Errorf("replica root: %w", err)
	}
	if !fi.IsDir() {
		return false, nil
	}
	d, err := r.Open(name)
	if err != nil {
		return false, fmt.Errorf("replica root: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("replica root: read %s: %w", name, err)
	}
	return len(names) == 0, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// writeAdoption records the adoption of a non-empty root.
func writeAdoption(r *os.Root, rec adoptionRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteIn(r, adoptedFile, append(b, '\n'), 0o600)
}
