package wan

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// runBound bounds one run of either tool: a bound, not an expectation.
const runBound = 30 * time.Minute

// knobs are the benchmark's settings, from the environment (see the
// package doc).
type knobs struct {
	scale      float64
	rtts       []time.Duration
	rate       int64 // the link's capacity per direction, bytes/s
	workloads  map[string]bool
	logDir     string
	georepArgs []string
	// linkKind is GEOREP_BENCH_LINK: auto (netem where it works, else the
	// delay line), proxy, netem, or netns-bare (the namespaces without
	// netem: no delay, no cap; it checks the plumbing where netem is
	// missing).
	linkKind string
}

func loadKnobs(b *testing.B) knobs {
	b.Helper()
	k := knobs{scale: 1, rtts: []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond}, rate: 400e6 / 8,
		workloads: map[string]bool{"small": true, "ops": true, "large": true}}
	if s := os.Getenv("GEOREP_BENCH_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 10 {
			b.Fatalf("GEOREP_BENCH_SCALE=%q: want a number in (0, 10]", s)
		}
		k.scale = v
	}
	if s := os.Getenv("GEOREP_BENCH_RTT"); s != "" {
		k.rtts = nil
		for _, f := range strings.Split(s, ",") {
			ms, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || ms < 0 || ms > 10000 {
				b.Fatalf("GEOREP_BENCH_RTT=%q: want round trips in ms, comma-separated (e.g. 0,50,100)", s)
			}
			k.rtts = append(k.rtts, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	if s := os.Getenv("GEOREP_BENCH_MBIT"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 1 {
			b.Fatalf("GEOREP_BENCH_MBIT=%q: want the link's capacity in Mbit/s, at least 1", s)
		}
		k.rate = int64(v * 1e6 / 8)
	}
	if s := os.Getenv("GEOREP_BENCH_WORKLOADS"); s != "" {
		k.workloads = map[string]bool{}
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f != "small" && f != "ops" && f != "large" {
				b.Fatalf("GEOREP_BENCH_WORKLOADS=%q: want some of small, ops, large", s)
			}
			k.workloads[f] = true
		}
	}
	k.logDir = os.Getenv("GEOREP_BENCH_LOGDIR")
	if k.logDir != "" {
		if err := os.MkdirAll(k.logDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	k.georepArgs = strings.Fields(os.Getenv("GEOREP_BENCH_GEOREP_ARGS"))
	k.linkKind = os.Getenv("GEOREP_BENCH_LINK")
	switch k.linkKind {
	case "":
		k.linkKind = "auto"
	case "auto", "proxy", "netem", "netns-bare":
	default:
		b.Fatalf("GEOREP_BENCH_LINK=%q: want auto, proxy, netem or netns-bare", k.linkKind)
	}
	return k
}

// scaled is n × scale, at least least.
func (k knobs) scaled(n, least int) int { return max(least, int(math.Round(float64(n)*k.scale))) }

// netem is what a netem link puts on each end of its veth pair: the
// one-way delay and the capacity of that direction, and a queue long enough
// for what is in flight at that rate (netem's default, 1,000 packets, is
// less than 100 ms at 400 Mbit/s).
func (k knobs) netem(rtt time.Duration) string {
	s := fmt.Sprintf("rate %dbit limit 100000", k.rate*8)
	if rtt > 0 {
		s = fmt.Sprintf("delay %dus %s", (rtt / 2).Microseconds(), s)
	}
	return s
}

// result is one workload at one round trip: both tools' times, and the
// bytes of the tree (for the big files' rates).
type result struct {
	rsync, georep time.Duration
	bytes         int64
}

// bench is one run of the benchmark: the sshd rsync logs in to, the
// client's key, and which tool goes first next.
type bench struct {
	b     *testing.B
	k     knobs
	dir   string
	sshd  *harness.SSHD // on loopback (the delay line's)
	key   string
	auth  string // its authorized_keys
	turns int
	netem bool                    // the links are network namespaces
	paths map[time.Duration]*path // netem: one pair of namespaces per round trip
}

// path is where the runs of one round trip go: through a delay line on
// loopback (link; none when zero: straight to sshd and the slave), or
// between two network namespaces joined by a veth pair with netem on both
// ends (pair: the master and rsync run in its master namespace, sshd and
// the slave in its slave namespace).
type path struct {
	link harness.Link
	pair *harness.NetnsPair
	sshd *harness.SSHD
}

// path returns the link of round trip rtt.
func (w *bench) path(rtt time.Duration) *path {
	w.b.Helper()
	if !w.netem {
		return &path{link: harness.Link{Delay: rtt / 2, Rate: w.k.rate}, sshd: w.sshd}
	}
	if p := w.paths[rtt]; p != nil {
		return p
	}
	netem := w.k.netem(rtt)
	if w.k.linkKind == "netns-bare" {
		netem = ""
	}
	pair, ok := harness.NewNetnsPair(w.b, netem)
	if !ok {
		w.b.Fatalf("netem %q could not be added to the veth pair", netem)
	}
	p := &path{pair: pair, sshd: harness.StartSSHD(w.b, harness.SSHDOptions{AuthorizedKeys: w.auth, Netns: pair})}
	w.probe(p)
	w.paths[rtt] = p
	return p
}

// direct is the path of the untimed syncs: straight to sshd and the slave
// on loopback, or the namespaces of rtt.
func (w *bench) direct(rtt time.Duration) *path {
	if w.netem {
		return w.path(rtt)
	}
	return &path{sshd: w.sshd}
}

// netemWorks reports whether tc can add netem in a network namespace here,
// or why not.
func netemWorks() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return false, "no ip(8) (Debian package iproute2)"
	}
	tc, err := exec.LookPath("tc")
	if err != nil {
		return false, "no tc(8) (Debian package iproute2)"
	}
	ns := fmt.Sprintf("georep-netem-probe-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		return false, fmt.Sprintf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	defer exec.Command(ip, "netns", "del", ns).Run()
	exec.Command(ip, "-n", ns, "link", "set", "lo", "up").Run()
	if out, err := exec.Command(ip, "netns", "exec", ns, tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput(); err != nil {
		return false, fmt.Sprintf("tc qdisc add dev lo root netem in a namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// BenchmarkWAN runs every workload at every round trip and prints the
// table.
func BenchmarkWAN(b *testing.B) {
	harness.RequireRoot(b, "sshd runs as root, and rsync logs in as root")
	harness.RequireRsync(b)
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("ssh not installed (Debian package openssh-client)")
	}
	harness.Bin(b, "georep-master")
	harness.Bin(b, "georep-slave")
	k := loadKnobs(b)
	key, auth := harness.ClientKey(b)
	w := &bench{b: b, k: k, dir: b.TempDir(), key: key, auth: auth, paths: map[time.Duration]*path{}}
	kind := "a Go delay line on loopback (harness.StartLinkProxy): no loss, TCP's congestion control does not see the delay"
	switch ok, why := netemWorks(); {
	case k.linkKind == "netns-bare":
		w.netem, kind = true, "two network namespaces WITHOUT netem (GEOREP_BENCH_LINK=netns-bare): no delay, no cap; a check of the plumbing, no WAN figure"
	case ok && k.linkKind != "proxy":
		w.netem, kind = true, "two network namespaces joined by veth, netem on both ends (delay RTT/2, the rate, no loss)"
	case k.linkKind == "netem":
		b.Fatalf("GEOREP_BENCH_LINK=netem, but netem is unavailable: %s", why)
	case !ok:
		kind += " (netem unavailable: " + why + ")"
	}
	if !w.netem {
		w.sshd = harness.StartSSHD(b, harness.SSHDOptions{AuthorizedKeys: auth})
		w.probe(w.direct(0))
	}
	fmt.Printf("\nWAN benchmark: %d CPUs, scale %g, link %.0f Mbit/s (%.1f MiB/s) per direction, shared by all connections, one-way delay RTT/2 each way;\n%s\n",
		runtime.NumCPU(), k.scale, float64(k.rate)*8/1e6, float64(k.rate)/(1<<20), kind)

	type row struct {
		name    string
		results map[time.Duration]result
		large   bool
	}
	var rows []row
	if k.workloads["small"] {
		n := k.scaled(20000, 10)
		r := row{name: fmt.Sprintf("%s × 4 KiB, initial", thousands(n)), results: map[time.Duration]result{}}
		src := filepath.Join(w.dir, "small-src")
		bytes := w.populate(src, n, 4<<10)
		for _, rtt := range k.rtts {
			r.results[rtt] = w.initial("small", rtt, src, bytes)
		}
		os.RemoveAll(src)
		rows = append(rows, r)
	}
	if k.workloads["ops"] {
		n, each := k.scaled(10000, 30), k.scaled(500, 1)
		r := row{name: fmt.Sprintf("%s ops (%s renames, %[2]s deletes, %[2]s overwrites) on %s × 4 KiB, 2nd sync", thousands(3*each), thousands(each), thousands(n)),
			results: map[time.Duration]result{}}
		for _, rtt := range k.rtts {
			r.results[rtt] = w.mixed(rtt, n, each)
		}
		rows = append(rows, r)
	}
	if k.workloads["large"] {
		size := k.scaled(256, 1) << 20
		r := row{name: fmt.Sprintf("4 × %d MiB, initial", size>>20), results: map[time.Duration]result{}, large: true}
		src := filepath.Join(w.dir, "large-src")
		bytes := w.populate(src, 4, size)
		for _, rtt := range k.rtts {
			r.results[rtt] = w.initial("large", rtt, src, bytes)
		}
		os.RemoveAll(src)
		rows = append(rows, r)
	}

	var t strings.Builder
	t.WriteString("| workload |")
	sep := "|---|"
	for _, rtt := range k.rtts {
		fmt.Fprintf(&t, " RTT %s: rsync/ssh | RTT %s: georep |", rttName(rtt), rttName(rtt))
		sep += "---|---|"
	}
	t.WriteString("\n" + sep + "\n")
	for _, r := range rows {
		fmt.Fprintf(&t, "| %s |", r.name)
		for _, rtt := range k.rtts {
			res := r.results[rtt]
			ratio := res.georep.Seconds() / res.rsync.Seconds()
			if r.large {
				fmt.Fprintf(&t, " %s | %s (%.2f×) |", w.rateCell(res.rsync, res.bytes), w.rateCell(res.georep, res.bytes), ratio)
			} else {
				fmt.Fprintf(&t, " %.2f s | %.2f s (%.2f×) |", res.rsync.Seconds(), res.georep.Seconds(), ratio)
			}
		}
		t.WriteString("\n")
	}
	fmt.Printf("\ntimes in seconds; (×) is georep's time over rsync's (below 1: georep is faster); big files: rate and link utilisation (bytes/s over the capacity)\n%s", t.String())
}

func rttName(rtt time.Duration) string {
	if rtt == 0 {
		return "0"
	}
	return fmt.Sprintf("%g ms", float64(rtt)/float64(time.Millisecond))
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rateCell is a big-file time with its rate and the link's utilisation.
func (w *bench) rateCell(d time.Duration, bytes int64) string {
	bps := float64(bytes) / d.Seconds()
	return fmt.Sprintf("%.1f s, %.1f MiB/s, %.0f %%", d.Seconds(), bps/(1<<20), 100*bps/float64(w.k.rate))
}

func (w *bench) populate(root string, files, size int) int64 {
	w.b.Helper()
	n, err := harness.PopulateFlat(root, files, size)
	if err != nil {
		w.b.Fatal(err)
	}
	return n
}

// initial times both tools' first sync of src into fresh targets over a
// link of round trip rtt.
func (w *bench) initial(name string, rtt time.Duration, src string, bytes int64) result {
	w.b.Helper()
	link := w.path(rtt)
	dst := filepath.Join(w.dir, name+"-rsync")
	g := w.newGeorep(link, name)
	res := result{bytes: bytes}
	w.alternate(
		func() { res.rsync = w.rsync(link, src, dst) },
		func() { res.georep = w.georep(link, g, src, fmt.Sprintf("%s-rtt%d", name, rtt.Milliseconds())) },
	)
	w.mustMatch(src, dst, "rsync")
	w.mustMatch(src, g.replica, "georep")
	w.report(name, rtt, res)
	os.RemoveAll(dst)
	g.remove()
	return res
}

// mixed syncs n × 4 KiB with both tools (on loopback, untimed), applies
// each renames, deletes and overwrites to the source, and times both tools'
// sync of that over a link of round trip rtt.
func (w *bench) mixed(rtt time.Duration, n, each int) result {
	w.b.Helper()
	src, dst := filepath.Join(w.dir, "ops-src"), filepath.Join(w.dir, "ops-rsync")
	w.populate(src, n, 4<<10)
	link, direct := w.path(rtt), w.direct(rtt)
	g := w.newGeorep(link, "ops")
	w.rsync(direct, src, dst)
	w.georep(direct, g, src, "")
	mixedOps(w.b, src, n, each)
	var res result
	w.alternate(
		func() { res.rsync = w.rsync(link, src, dst) },
		func() { res.georep = w.georep(link, g, src, fmt.Sprintf("ops-rtt%d", rtt.Milliseconds())) },
	)
	w.mustMatch(src, dst, "rsync")
	w.mustMatch(src, g.replica, "georep")
	w.report("ops", rtt, res)
	os.RemoveAll(src)
	os.RemoveAll(dst)
	g.remove()
	return res
}

// alternate runs the two tools, rsync first one time, georep the next.
func (w *bench) alternate(rsync, georep func()) {
	w.turns++
	if w.turns%2 == 1 {
		rsync()
		georep()
	} else {
		georep()
		rsync()
	}
}

func (w *bench) report(name string, rtt time.Duration, r result) {
	fmt.Printf("%-6s RTT %-6s rsync/ssh %8.2f s   georep %8.2f s   georep/rsync %.2f×\n",
		name, rttName(rtt), r.rsync.Seconds(), r.georep.Seconds(), r.georep.Seconds()/r.rsync.Seconds())
}

func (w *bench) mustMatch(src, dst, tool string) {
	w.b.Helper()
	diffs, err := harness.Compare(src, dst, harness.CompareOptions{})
	if tool == "rsync" {
		diffs = w.dirTimes(src, diffs)
	}
	if err != nil || len(diffs) > 0 {
		w.b.Fatalf("%s's copy %s differs from %s: %v %q", tool, dst, src, err, diffs[:min(10, len(diffs))])
	}
}

// dirTimes drops from diffs the directories whose mtime alone differs, and
// says how many there were: rsync over ssh (3.5.0 here) now and then leaves
// the times of a few directories it created unset (seen in about one run
// in five right after the tree was written, with or without the link),
// which says nothing of the time it took.
func (w *bench) dirTimes(src string, diffs []string) []string {
	var rest []string
	n := 0
	for _, d := range diffs {
		i := strings.Index(d, ": mtime ")
		if i > 0 {
			if name, err := strconv.Unquote(d[:i]); err == nil {
				if fi, err := os.Lstat(filepath.Join(src, name)); err == nil && fi.IsDir() {
					n++
					continue
				}
			}
		}
		rest = append(rest, d)
	}
	if n > 0 {
		fmt.Printf("(rsync left the mtime of %d directories unset; not counted as a difference)\n", n)
	}
	return rest
}

// sshArgs is the ssh command rsync runs (-e), to port.
func (w *bench) sshArgs(port string) string {
	return fmt.Sprintf("ssh -p %s -i %s -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR", port, w.key)
}

// probe checks that rsync over ssh works on p before anything is timed.
func (w *bench) probe(p *path) {
	w.b.Helper()
	src, dst := filepath.Join(w.dir, "probe"), filepath.Join(w.dir, "probe-dst")
	if err := os.MkdirAll(src, 0o755); err != nil {
		w.b.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "f"), []byte("probe"), 0o644)
	w.rsync(p, src, dst)
	w.mustMatch(src, dst, "rsync")
	os.RemoveAll(dst)
}

// rsync runs rsync -aH --numeric-ids --delete over ssh from src to dst
// across p (through a fresh delay line, or from p's master namespace) and
// returns its wall time.
func (w *bench) rsync(p *path, src, dst string) time.Duration {
	w.b.Helper()
	addr := p.sshd.Addr
	if p.link != (harness.Link{}) {
		proxy := harness.StartLinkProxy(w.b, addr, p.link)
		defer proxy.Close()
		addr = proxy.Addr
	}
	host, port, _ := net.SplitHostPort(addr)
	bin, args := "rsync", []string{"-aH", "--numeric-ids", "--delete", "-e", w.sshArgs(port), src + "/", "root@" + host + ":" + dst + "/"}
	if p.pair != nil {
		bin, args = p.pair.Cmd(p.pair.Master, append([]string{bin}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	settle()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		w.b.Fatalf("rsync over ssh: %v\n%s\nsshd:\n%s", err, harness.Tail(string(out), 20), harness.Tail(p.sshd.Log(), 20))
	}
	return d
}

// georepTarget is a fresh replica, its slave and the master's work dir.
type georepTarget struct {
	replica, work string
	addr          string   // the slave's
	tls           []string // the master's TLS flags; nil: harness.MasterArgs's
	stop          func()
}

var slaveAddrRE = regexp.MustCompile(`msg="slave serving" addr=(\S+)`)

// newGeorep starts a slave of a fresh replica on p's slave side: on
// loopback, or in p's slave namespace (its certificate names 127.0.0.1 and
// localhost, so the master checks it as localhost).
func (w *bench) newGeorep(p *path, name string) *georepTarget {
	w.b.Helper()
	g := &georepTarget{replica: filepath.Join(w.dir, name+"-replica"), work: filepath.Join(w.dir, name+"-work")}
	if err := os.Mkdir(g.replica, 0o755); err != nil {
		w.b.Fatal(err)
	}
	if p.pair == nil {
		s := harness.StartSlave(w.b, g.replica) // mutual TLS, certificates of its own
		g.addr, g.stop = s.Addr, s.Stop
		return g
	}
	c := harness.MakeCerts(w.b, w.b.TempDir())
	bin, args := p.pair.Cmd(p.pair.Slave, append([]string{harness.Bin(w.b, "georep-slave"), "--listen", p.pair.SlaveIP + ":0", "--root", g.replica}, c.SlaveArgs()...)...)
	s := harness.StartProc(w.b, nil, bin, args...)
	if !s.WaitLog("slave serving", 30*time.Second) {
		w.b.Fatalf("the slave in namespace %s does not serve:\n%s", p.pair.Slave, harness.Tail(s.Log(), 20))
	}
	m := slaveAddrRE.FindStringSubmatch(s.Log())
	if m == nil {
		w.b.Fatalf("no address in the slave's log:\n%s", harness.Tail(s.Log(), 20))
	}
	g.addr, g.stop = m[1], s.Kill
	g.tls = append(c.MasterArgs(), "--tls-server-name", "localhost")
	return g
}

func (g *georepTarget) remove() {
	g.stop()
	os.RemoveAll(g.replica)
	os.RemoveAll(g.work)
}

// georep runs georep-master --oneshot from src to g across p and returns
// its wall time; the master's output goes to GEOREP_BENCH_LOGDIR/<logName>.log
// when both are set.
func (w *bench) georep(p *path, g *georepTarget, src, logName string) time.Duration {
	w.b.Helper()
	addr := g.addr
	if p.link != (harness.Link{}) {
		proxy := harness.StartLinkProxy(w.b, addr, p.link)
		defer proxy.Close()
		addr = proxy.Addr
	}
	extra := append([]string{"--oneshot", "--oneshot-timeout", runBound.String()}, w.k.georepArgs...)
	args := harness.MasterArgs(addr, src, g.work, extra...)
	if g.tls != nil {
		args = append(append([]string{"--slave", addr, "--source", src, "--work-dir", g.work}, g.tls...), extra...)
	}
	bin := harness.Bin(w.b, "georep-master")
	if p.pair != nil {
		bin, args = p.pair.Cmd(p.pair.Master, append([]string{bin}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runBound+time.Minute)
	defer cancel()
	settle()
	start := time.Now()
	code, out := harness.Run(w.b, ctx, nil, bin, args...)
	d := time.Since(start)
	if code != 0 {
		w.b.Fatalf("georep-master --oneshot exited %d:\n%s", code, harness.Tail(out, 60))
	}
	if w.k.logDir != "" && logName != "" {
		if err := os.WriteFile(filepath.Join(w.k.logDir, logName+".log"), []byte(out), 0o644); err != nil {
			w.b.Fatal(err)
		}
	}
	return d
}

// settle writes back what the previous run left dirty, so that it does not
// slow the next.
func settle() { exec.Command("sync").Run() }

// mixedOps applies each renames (into other directories, under new names),
// each deletes and each overwrites (4 KiB of new bytes) to a PopulateFlat
// tree of n files, shuffled together.
func mixedOps(b *testing.B, src string, n, each int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	dirs := (n + 199) / 200
	path := func(i int) string { return filepath.Join(src, harness.FlatDir(i), harness.FlatName(i)) }
	perm := rng.Perm(n)
	var ops []func() error
	for _, i := range perm[:each] {
		to := filepath.Join(src, fmt.Sprintf("d%03d", rng.IntN(dirs)), fmt.Sprintf("r%05d", i))
		ops = append(ops, func() error { return os.Rename(path(i), to) })
	}
	for _, i := range perm[each : 2*each] {
		ops = append(ops, func() error { return os.Remove(path(i)) })
	}
	for _, i := range perm[2*each : 3*each] {
		content := make([]byte, 4<<10)
		for j := range content {
			content[j] = byte(rng.Uint32())
		}
		ops = append(ops, func() error { return os.WriteFile(path(i), content, 0o644) })
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for _, op := range ops {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}
