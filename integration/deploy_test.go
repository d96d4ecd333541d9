package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// What an operator installs from deploy/ is checked here with the real
// tools and binaries: the systemd units with systemd-analyze verify, every
// example configuration (deploy/config and the ConfigMaps of
// deploy/kubernetes) by running the daemons with it, under the capability
// sets the units and manifests grant, and the Containerfiles against the
// repository.

const deployDir = "../deploy"

// TestDeploySystemdUnits runs systemd-analyze verify on each unit, with
// ExecStart pointed at the built binaries (verify checks that they exist),
// and fails on anything it prints: verify exits 0 on unknown keys.
func TestDeploySystemdUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd); the units are not checked")
	}
	units, _ := filepath.Glob(filepath.Join(deployDir, "systemd", "*.service"))
	if len(units) < 2 {
		t.Fatalf("deploy/systemd holds %d units, want georep-master@.service and georep-slave@.service", len(units))
	}
	dir := t.TempDir()
	for _, unit := range units {
		t.Run(filepath.Base(unit), func(t *testing.T) {
			text := deployRead(t, unit)
			for _, bin := range []string{"georep-master", "georep-slave"} {
				text = strings.ReplaceAll(text, "/usr/local/bin/"+bin, harness.Bin(t, bin))
			}
			if !strings.Contains(text, "\nExecStart="+filepath.Dir(harness.Bin(t, "georep-master"))) {
				t.Fatalf("%s: ExecStart does not run /usr/local/bin/georep-master or georep-slave", unit)
			}
			name := filepath.Base(unit)
			names := []string{name}
			if strings.HasSuffix(name, "@.service") {
				// The template itself and an instance (%i expanded).
				names = append(names, strings.TrimSuffix(name, "@.service")+"@data.service")
			}
			for _, n := range names {
				p := filepath.Join(dir, n)
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(sa, "verify", p).CombinedOutput()
				if err != nil || len(strings.TrimSpace(string(out))) > 0 {
					t.Errorf("systemd-analyze verify %s: %v\n%s", n, err, out)
				}
				if out, err := exec.Command(sa, "security", "--offline=yes", p).CombinedOutput(); err == nil {
					if i := strings.LastIndex(string(out), "Overall exposure level"); i >= 0 {
						t.Logf("%s", strings.TrimSpace(string(out[i:])))
					}
				}
			}
			if !strings.HasSuffix(name, "@.service") {
				t.Errorf("%s: not a template (each master has its own slave, each session its own master)", name)
			}
			for _, key := range []string{"Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=2",
				"KillMode=mixed", "NoNewPrivileges=yes", "CapabilityBoundingSet="} {
				if !strings.Contains(text, "\n"+key) {
					t.Errorf("%s: no %s", name, key)
				}
			}
		})
	}
}

// deployConfig is one example configuration: a file of deploy/config, or a
// ConfigMap key of deploy/kubernetes.
type deployConfig struct {
	name   string // where it comes from
	daemon string // georep-master or georep-slave
	text   string
	// caps is the capability bounding set it runs with there (setpriv
	// syntax); uid is the user (0 or the image's 65532).
	caps string
	uid  int
}

func (c deployConfig) gluster() bool {
	return regexp.MustCompile(`(?m)^\s*gluster-volume:\s*\S`).MatchString(c.text)
}

// TestDeployConfigs runs the daemons with every example configuration:
// each plain-directory one replicates a tree over mutual TLS (the
// certificates from deploy/tls/make-certs.sh stand in for /etc/georep/tls),
// the host-specific paths and addresses given as flags, which take
// precedence over the file; each GlusterFS one must get past configuration
// (exit 2 is bad configuration) to the volume it names.
func TestDeployConfigs(t *testing.T) {
	harness.RequireRsync(t)
	units := map[string]string{
		"georep-master": deployCaps(t, filepath.Join(deployDir, "systemd", "georep-master@.service")),
		"georep-slave":  deployCaps(t, filepath.Join(deployDir, "systemd", "georep-slave@.service")),
	}
	var configs []deployConfig
	files, _ := filepath.Glob(filepath.Join(deployDir, "config", "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		c := deployConfig{name: "deploy/config/" + base, text: deployRead(t, f)}
		switch {
		case strings.HasPrefix(base, "master"):
			c.daemon = "georep-master"
		case strings.HasPrefix(base, "slave"):
			c.daemon = "georep-slave"
		default:
			t.Fatalf("%s: name it master-*.yaml or slave*.yaml", f)
		}
		c.caps = units[c.daemon]
		configs = append(configs, c)
	}
	for _, daemon := range []string{"master", "slave"} {
		f := filepath.Join(deployDir, "kubernetes", daemon+".yaml")
		text := deployRead(t, f)
		c := deployConfig{name: "deploy/kubernetes/" + daemon + ".yaml", daemon: "georep-" + daemon,
			text: deployConfigMap(t, text, daemon+".yaml")}
		c.caps, c.uid = deployPodSecurity(t, text)
		configs = append(configs, c)
	}

	tls := t.TempDir()
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("sh", filepath.Join(deployDir, "tls", "make-certs.sh"), tls, "localhost", "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("deploy/tls/make-certs.sh: %v\n%s", err, out)
		}
	} else {
		t.Log("openssl not installed: deploy/tls/make-certs.sh not run, certificates from the harness")
		harness.MakeCerts(t, tls)
	}

	plain := func(daemon string) []deployConfig {
		var out []deployConfig
		for _, c := range configs {
			if c.daemon == daemon && !c.gluster() {
				out = append(out, c)
			}
		}
		return out
	}
	masters, slaves := plain("georep-master"), plain("georep-slave")
	if len(masters) == 0 || len(slaves) == 0 {
		t.Fatal("no plain-directory master or slave example")
	}
	// Every plain example runs at least once, each with its own site's
	// counterpart where it has one (kubernetes with kubernetes).
	for _, m := range masters {
		s := slaves[0]
		for _, c := range slaves {
			if filepath.Dir(c.name) == filepath.Dir(m.name) {
				s = c
			}
		}
		t.Run(m.name+"+"+s.name, func(t *testing.T) { deployPair(t, tls, m, s) })
	}
	for _, s := range slaves {
		if !slices.ContainsFunc(masters, func(m deployConfig) bool { return filepath.Dir(m.name) == filepath.Dir(s.name) }) {
			t.Run(masters[0].name+"+"+s.name, func(t *testing.T) { deployPair(t, tls, masters[0], s) })
		}
	}
	for _, c := range configs {
		if c.gluster() {
			t.Run(c.name, func(t *testing.T) { deployGluster(t, tls, c) })
		}
	}
}

// deployPair replicates a tree from master m to slave s, each run from its
// example configuration with the capabilities and user its deployment gives
// it, and, when the master runs as root with the change journal, follows a
// change made while it runs.
func deployPair(t *testing.T, tls string, m, s deployConfig) {
	dir := t.TempDir()
	src, replica, work := filepath.Join(dir, "src"), filepath.Join(dir, "replica"), filepath.Join(dir, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if m.uid == 0 {
		if err := harness.Populate(src, rand.New(rand.NewPCG(8, 8))); err != nil {
			t.Fatal(err)
		}
	} else {
		// An unprivileged master replicates what it can read.
		for i := range 20 {
			p := filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mtls := deployTLSCopy(t, tls, m.uid)
	addr := harness.FreeAddr(t)
	slave := deployStart(t, s, tls, "--root", replica, "--listen", addr)
	if !slave.WaitLog("slave serving", 30*time.Second) {
		t.Fatalf("%s: the slave did not start serving:\n%s", s.name, slave.Log())
	}
	if m.uid != 0 {
		if err := os.Mkdir(work, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(work, m.uid, m.uid)
		deployTraversable(dir)
	}
	args := []string{"--source", src, "--work-dir", work, "--slave", addr}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin, argv := deployArgv(t, m, mtls, append(args, "--oneshot", "--oneshot-timeout", "2m")...)
	code, out := harness.Run(t, ctx, nil, bin, argv...)
	if code != 0 {
		t.Fatalf("%s: georep-master --oneshot exited %d:\n%s", m.name, code, out)
	}
	opts := harness.CompareOptions{Xattrs: strings.Contains(m.text, "sync-xattrs: true")}
	if diffs, err := harness.Compare(src, replica, opts); err != nil || len(diffs) > 0 {
		t.Fatalf("%s → %s: replica differs (%v):\n%s", m.name, s.name, err, strings.Join(deployFirst(diffs, 20), "\n"))
	}
	if m.uid != 0 || os.Geteuid() != 0 || strings.Contains(m.text, "change-detector: xsync") {
		return
	}
	// The daemon, with the capabilities of its unit, keeps the fanotify
	// change journal (it falls back to crawls when it cannot).
	bin, argv = deployArgv(t, m, mtls, args...)
	p := harness.StartProc(t, nil, bin, argv...)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.Log(), "change journal started") && !strings.Contains(p.Log(), "no change journal") &&
		!p.Exited() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.Log(), "change journal started") {
		t.Fatalf("%s: the master daemon did not start its change journal (capabilities %s):\n%s", m.name, m.caps, p.Log())
	}
	if err := os.WriteFile(filepath.Join(src, "after-start"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if diffs, err := harness.WaitConverged(src, replica, opts, time.Minute); err != nil || len(diffs) > 0 {
		t.Fatalf("%s: a change made while the daemon ran did not reach the replica (%v):\n%s", m.name, err, strings.Join(deployFirst(diffs, 20), "\n"))
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code, ok := p.Wait(30 * time.Second); !ok || code != 0 {
		t.Errorf("%s: the master daemon did not stop cleanly on SIGTERM (exit %d, ended %v)", m.name, code, ok)
	}
}

// deployGluster runs a GlusterFS example: it must pass configuration and go
// for the volume it names; no volume of that name is expected to exist.
func deployGluster(t *testing.T, tls string, c deployConfig) {
	var extra []string
	if c.daemon == "georep-master" {
		extra = []string{"--work-dir", t.TempDir(), "--slave", harness.FreeAddr(t)}
	} else {
		extra = []string{"--listen", harness.FreeAddr(t), "--state-dir", t.TempDir()}
	}
	p := deployStart(t, c, tls, extra...)
	code, ended := p.Wait(20 * time.Second)
	if !ended {
		// Still going after the configuration was accepted: stop it the way
		// systemd does, so that it can unmount and reap its children.
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if _, ok := p.Wait(60 * time.Second); !ok {
			t.Errorf("%s: did not end within 60s of SIGTERM", c.name)
		}
		return
	}
	vol := regexp.MustCompile(`(?m)^\s*gluster-volume:\s*(\S+)`).FindStringSubmatch(c.text)[1]
	if code == 2 || !strings.Contains(p.Log(), vol) {
		t.Fatalf("%s: exit %d, want a failure to reach volume %s (2 is bad configuration):\n%s", c.name, code, vol, p.Log())
	}
	t.Logf("%s: configuration accepted; exit %d on the missing volume %s", c.name, code, vol)
}

// deployStart starts c's daemon with its configuration and extra flags.
func deployStart(t *testing.T, c deployConfig, tls string, extra ...string) *harness.Proc {
	bin, argv := deployArgv(t, c, tls, extra...)
	return harness.StartProc(t, nil, bin, argv...)
}

// deployArgv writes c with /etc/georep/tls/ replaced by tls and returns the
// command line running its daemon with it: under setpriv with c's
// capability bounding set and user when this test runs as root.
func deployArgv(t *testing.T, c deployConfig, tls string, extra ...string) (string, []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(c.text, "/etc/georep/tls/", tls+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	deployTraversable(filepath.Dir(f))
	args := append([]string{"--config", f}, extra...)
	bin := harness.Bin(t, c.daemon)
	setpriv, err := exec.LookPath("setpriv")
	if os.Geteuid() != 0 || err != nil {
		t.Logf("%s: not root or no setpriv: run without its capability bounding set %q", c.name, c.caps)
		return bin, args
	}
	pre := []string{"--bounding-set", c.caps}
	if c.uid != 0 {
		pre = append(pre, "--reuid", fmt.Sprint(c.uid), "--regid", fmt.Sprint(c.uid), "--clear-groups")
	}
	deployTraversable(filepath.Dir(bin))
	return setpriv, append(append(pre, "--", bin), args...)
}

// deployTLSCopy returns tls, or for an unprivileged user a copy it owns.
func deployTLSCopy(t *testing.T, tls string, uid int) string {
	t.Helper()
	if uid == 0 || os.Geteuid() != 0 {
		return tls
	}
	dir := t.TempDir()
	deployTraversable(dir)
	ents, _ := os.ReadDir(tls)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(tls, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, e.Name())
		if err := os.WriteFile(p, b, 0o400); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, uid)
	}
	return dir
}

// deployCaps returns a unit's CapabilityBoundingSet= in setpriv's syntax.
func deployCaps(t *testing.T, unit string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindStringSubmatch(deployRead(t, unit))
	if m == nil {
		t.Fatalf("%s: no CapabilityBoundingSet=", unit)
	}
	set := "-all"
	for _, c := range strings.Fields(m[1]) {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return set
}

// deployPodSecurity returns the capability set (setpriv syntax) and user a
// Kubernetes manifest gives its container: capabilities add: [...] after
// drop: ["ALL"], and runAsUser.
func deployPodSecurity(t *testing.T, manifest string) (string, int) {
	t.Helper()
	if !strings.Contains(manifest, `drop: ["ALL"]`) {
		t.Fatal("kubernetes manifest: the container does not drop all capabilities")
	}
	set := "-all"
	if m := regexp.MustCompile(`(?m)^\s+add: \[(.*)\]$`).FindStringSubmatch(manifest); m != nil {
		for _, c := range strings.Split(m[1], ",") {
			set += ",+" + strings.ToLower(strings.Trim(strings.TrimSpace(c), `"`))
		}
	}
	uid := 0
	if m := regexp.MustCompile(`(?m)^\s+runAsUser: (\d+)$`).FindStringSubmatch(manifest); m != nil {
		fmt.Sscan(m[1], &uid)
	}
	return set, uid
}

// deployConfigMap returns the block scalar "key: |" of a manifest.
func deployConfigMap(t *testing.T, manifest, key string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(manifest))
	var out []string
	indent := -1
	for sc.Scan() {
		line := sc.Text()
		if indent < 0 {
			if strings.TrimSpace(line) == key+": |" {
				indent = len(line) - len(strings.TrimLeft(line, " ")) + 1
			}
			continue
		}
		if strings.TrimSpace(line) != "" && len(line)-len(strings.TrimLeft(line, " ")) < indent {
			break
		}
		out = append(out, strings.TrimLeft(line, " "))
	}
	if len(out) == 0 {
		t.Fatalf("kubernetes manifest: no ConfigMap key %q", key)
	}
	return strings.Join(out, "\n") + "\n"
}

// TestDeployContainerfiles checks each Containerfile against the repository:
// what it COPYs exists and holds every package of this module its binary is
// built from, the Go image is the version of go.mod, the binary it builds is
// the one its ENTRYPOINT runs, and that binary accepts the CMD's flags.
func TestDeployContainerfiles(t *testing.T) {
	gomod := deployRead(t, "../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)[1]
	for _, daemon := range []string{"master", "slave"} {
		name := "Containerfile." + daemon
		t.Run(name, func(t *testing.T) {
			text := deployRead(t, filepath.Join(deployDir, "container", name))
			bin := "georep-" + daemon
			var copied []string
			for _, m := range regexp.MustCompile(`(?m)^COPY ([^-\n].*) (\S+)$`).FindAllStringSubmatch(text, -1) {
				for _, src := range strings.Fields(m[1]) {
					if _, err := os.Stat(filepath.Join("..", src)); err != nil {
						t.Errorf("COPY %s: not in the repository: %v", src, err)
					}
					copied = append(copied, strings.TrimSuffix(src, "/"))
				}
			}
			if m := regexp.MustCompile(`(?m)^FROM \S*golang:(\d+\.\d+)\S* AS build$`).FindStringSubmatch(text); m == nil || m[1] != goVersion {
				t.Errorf("the build stage is not FROM golang:%s (go.mod's version): %v", goVersion, m)
			}
			if !regexp.MustCompile(`(?m)^FROM \S*debian:bookworm\S*$`).MatchString(text) {
				t.Error("the runtime stage is not Debian bookworm")
			}
			build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .* (\./cmd/\S+))$`).FindStringSubmatch(text)
			if build == nil || build[2] != "./cmd/"+bin {
				t.Fatalf("no `RUN CGO_ENABLED=0 go build ... ./cmd/%s`", bin)
			}
			cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", build[2])
			cmd.Dir, cmd.Env = "..", append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list %s with CGO_ENABLED=0: %v\n%s", build[2], err, out)
			}
			const module = "github.com/georep/georep/"
			for _, pkg := range strings.Fields(string(out)) {
				rel, ok := strings.CutPrefix(pkg, module)
				if ok && !slices.ContainsFunc(copied, func(c string) bool { return rel == c || strings.HasPrefix(rel, c+"/") }) {
					t.Errorf("%s needs %s, which no COPY brings into the build stage", bin, rel)
				}
			}
			for _, want := range []string{"COPY go.mod go.sum ./", "COPY --from=build /out/" + bin + " /usr/local/bin/" + bin,
				`ENTRYPOINT ["/usr/local/bin/` + bin + `"]`, "rsync"} {
				if !strings.Contains(text, want) {
					t.Errorf("no %q", want)
				}
			}
			if daemon == "slave" && !strings.Contains(text, "glusterfs-client") {
				t.Error("the slave image does not install glusterfs-client (gluster-volume mounts with it)")
			}
			if daemon == "master" && !regexp.MustCompile(`(?m)^USER [1-9]`).MatchString(text) {
				t.Error("the master image runs as root")
			}
			m := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindStringSubmatch(text)
			if m == nil {
				t.Fatal("no CMD")
			}
			help, _ := exec.Command(harness.Bin(t, bin), "--help").CombinedOutput()
			for _, arg := range strings.Split(m[1], ",") {
				arg = strings.Trim(strings.TrimSpace(arg), `"`)
				if strings.HasPrefix(arg, "--") && !strings.Contains(string(help), "  "+arg+" ") {
					t.Errorf("CMD flag %s: %s --help does not list it", arg, bin)
				}
			}
			if want := "/etc/georep/" + daemon + ".yaml"; !strings.Contains(m[1], want) {
				t.Errorf("CMD does not read %s (where deploy/kubernetes mounts it)", want)
			}
		})
	}
}

// deployTraversable makes dir and its parents below the temporary
// directory searchable by everyone, for a daemon run as another user.
func deployTraversable(dir string) {
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			os.Chmod(d, fi.Mode().Perm()|0o555)
		}
	}
}

func deployRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deployFirst(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}
