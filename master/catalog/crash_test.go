package catalog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// The crash test: a child process commits rounds to a catalog and says
// after each one that its Commit returned; the parent kills it with
// SIGKILL at a random moment, reopens the catalog and checks that it holds
// every round the child reported, whole, and nothing of a round that was
// not committed but the whole of it (the one in flight may have made it).
//
// Round r renames every one of crashNodes files to "r<r>-<i>" with
// ctime r, in one Commit, and identifies crashNew new inodes; a partial
// round would leave files of two rounds, or names of one round and records
// of another.
const (
	crashNodes = 20_000 // a batch of about 3 MB: beyond half a memtable, Pebble's large-batch path
	crashNew   = 100
	crashEnv   = "GEOREP_CATALOG_CRASH_CHILD"
)

func crashGFID(i int) gfid.GFID {
	var g gfid.GFID
	binary.BigEndian.PutUint64(g[:], 0x6765_6f72_6570_0000|uint64(i>>32))
	binary.BigEndian.PutUint64(g[8:], uint64(i)*0x9e3779b97f4a7c15) // spread like random gfids
	return g
}

var crashDir = gfid.MustParse("00000000-0000-4000-8000-00000000d1d1")

func crashRound(r int) []Node {
	nodes := make([]Node, 0, crashNodes+1)
	nodes = append(nodes, Node{GFID: crashDir, Type: TypeDir, Mode: 0o40755, CtimeNs: int64(r), Links: []Link{{gfid.Root, "d"}}})
	for i := 0; i < crashNodes; i++ {
		nodes = append(nodes, Node{GFID: crashGFID(i), Type: TypeReg, Mode: 0o100644, UID: 1000, GID: 1000,
			Size: int64(i), MtimeNs: 1767268800_000000000 + int64(i), CtimeNs: int64(r),
			Links: []Link{{crashDir, fmt.Sprintf("r%d-%d", r, i)}}})
	}
	return nodes
}

func crashKeys(r int) []Key {
	keys := make([]Key, crashNew)
	for i := range keys {
		keys[i] = Key{Ino: uint64(r*crashNew + i), BtimeNs: int64(r)}
	}
	return keys
}

// TestCrashChild is the child's side (run by TestCrashConsistency).
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("the child of TestCrashConsistency")
	}
	c, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	start, _ := strconv.Atoi(os.Getenv(crashEnv + "_FROM"))
	for r := start; ; r++ {
		if _, _, err := c.Identify(crashKeys(r)); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("identified", r)
		if err := c.Commit(crashRound(r), nil); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("committed", r)
	}
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes for a few seconds")
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	next, known := 1, 0
	for kill := 0; kill < 6; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, crashEnv+"_FROM="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of reports: between commits, in the
		// middle of one, during an Identify, during Pebble's flushes and
		// compactions.
		committed, identified := 0, 0
		wait := time.After(time.Duration(50+rng.IntN(1500)) * time.Millisecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child ended: %v\n%s", cmd.Wait(), stderr.String())
				}
				if strings.HasPrefix(l, "error") {
					t.Fatalf("child: %s", l)
				}
				var r int
				if _, err := fmt.Sscanf(l, "committed %d", &r); err == nil {
					committed = r
				} else if _, err := fmt.Sscanf(l, "identified %d", &r); err == nil {
					identified = r
				}
			case <-wait:
				cmd.Process.Signal(syscall.SIGKILL)
				break read
			}
		}
		for range lines { // what it said before it died
		}
		cmd.Wait()

		c, err := Open(path)
		if err != nil {
			t.Fatalf("reopen after kill %d: %v", kill, err)
		}
		round := checkCrashRound(t, c)
		// The last round committed, or the one in flight when it died.
		last, inFlight := committed, committed+1
		if committed == 0 { // none in this run
			last, inFlight = known, next
		}
		if round != last && round != inFlight {
			t.Fatalf("kill %d: the catalog holds round %d; the child had committed %d, then was in round %d", kill, round, last, inFlight)
		}
		known = round
		// Every identity the child reported is there, with one gfid each.
		for r := 1; r <= identified; r++ {
			for _, k := range crashKeys(r) {
				if _, ok, err := c.Identity(k); err != nil || !ok {
					t.Fatalf("kill %d: identity %v of round %d lost (%v)", kill, k, r, err)
				}
			}
		}
		t.Logf("kill %d: child had committed round %d (identified %d); the catalog holds round %d", kill, committed, identified, round)
		c.Close()
		next = max(round, identified) + 1
	}
}

// checkCrashRound checks that c holds one whole round and returns it (0:
// none yet).
func checkCrashRound(t *testing.T, c *Catalog) int {
	t.Helper()
	d, ok, err := c.Node(crashDir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		if n, _ := c.Count(); n != 0 {
			t.Fatalf("no round committed, Count = %d", n)
		}
		return 0
	}
	round := int(d.CtimeNs)
	if n, err := c.Count(); err != nil || n != crashNodes+1 {
		t.Fatalf("round %d: Count = %d, %v; want %d", round, n, err, crashNodes+1)
	}
	names := 0
	err = c.ForEachChild(crashDir, func(name string, g gfid.GFID) error {
		var r, i int
		if _, err := fmt.Sscanf(name, "r%d-%d", &r, &i); err != nil || r != round || g != crashGFID(i) {
			return fmt.Errorf("name %q → %v in round %d", name, g, round)
		}
		names++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nodes := 0
	err = c.ForEachNode(func(n Node) error {
		if n.CtimeNs != int64(round) {
			return fmt.Errorf("node %v of round %d in round %d", n.GFID, n.CtimeNs, round)
		}
		nodes++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if names != crashNodes || nodes != crashNodes+1 {
		t.Fatalf("round %d: %d names, %d nodes; want %d and %d", round, names, nodes, crashNodes, crashNodes+1)
	}
	return round
}
