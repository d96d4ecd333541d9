// Package bench compares georep with GlusterFS's own geo-replication,
// gsyncd, on real GlusterFS volumes in the same run: the same workloads, on
// the same kind of freshly created volumes (a master with the changelog
// translator on and a slave), one tool after the other, and one table per
// workload with both side by side.
//
//	GEOREP_BIN=$(pwd)/bin go test -run '^$' -bench . -benchtime 1x -timeout 90m ./integration/gluster/bench/
//
// # Workloads
//
//   - BenchmarkTree: 10,000 × 4 KiB files written on a FUSE mount of the
//     master volume, then the replicator started: the time from its start
//     until the slave holds every file with the right content (files/s,
//     MiB/s). Then, on that live session, 1,500 mixed operations (500
//     renames, 500 deletes, 500 overwrites with new bytes) and the time from
//     their end until the slave matches again. Then N single 4 KiB files,
//     one at a time: write on the master mount → visible with the right
//     content on a mount of the slave volume, p50 and p99.
//   - BenchmarkLargeFiles: 4 × 256 MiB, initial sync as above (MiB/s).
//
// Everything is checked on the slave by content (SHA-256 of every file,
// read through a separate FUSE mount of the slave volume with the kernel's
// attribute and entry caches off), not only by names: a replica that is
// wrong is reported as wrong in the table. A time is the moment a cheap check
// (names and sizes; the touched files' contents for the mixed operations)
// first passed, provided the full content check that follows passes at once;
// otherwise the end of the first content check that passed.
//
// # gsyncd
//
// The gsyncd side is set up the way an operator does on one host: an sshd
// from Debian's openssh-server (installed with apt-get when missing) started
// by the benchmark on 127.0.0.1 on a free port, with its own configuration
// and host key in a temporary directory; root's default ssh identity
// authorised for root (created when root has none); `gluster system::
// execute gsec_create`; `gluster volume geo-replication M HOST::S create
// ssh-port P push-pem force`; `config ssh_port P` (create does not keep the
// port in the session's configuration), `config change_interval`, and
// `config secondary-access-mount true` (see below); `start`; `status`.
// Afterwards the session is stopped and deleted, sshd stopped by pid, and
// /root/.ssh, the key files gsec_create made under
// /var/lib/glusterd/geo-replication, the session's working directory and
// its logs are put back as they were.
//
// gsyncd's slave lazily unmounts its aux mount and has rsync write into
// /proc/<pid>/cwd; on this machine that makes rsync create empty files while
// reporting success (gsyncd logs the batch as synced). The slave keeps its
// mount instead when secondary-access-mount is set, and then the data
// arrives: the benchmark sets it unless GEOREP_BENCH_GSYNCD_STOCK=1, which
// runs gsyncd's defaults (and shows the empty files in the table).
//
// gsyncd's live changelog processing sometimes never sees the brick's new
// changelogs (its history crawl at start always works): the mixed
// operations then time out with the session Active in "Changelog Crawl"
// and no batch in its log. The table says FAILED with the reason, and the
// tail of gsyncd.log is printed; nothing retries or restarts it.
//
// # georep
//
// When both georep-master --help and georep-slave --help offer
// --gluster-volume, the daemons replicate volume to volume:
//
//	georep-slave  --listen 127.0.0.1:0 --gluster-volume S --volfile-server HOST --insecure
//	georep-master --gluster-volume M --volfile-server HOST --slave ADDR --work-dir W --insecure
//
// Until then (the "fallback" label in the tables) georep-master replicates
// --source, the FUSE mount of the master volume the workloads write
// through, and georep-slave's --root is a FUSE mount of the slave volume.
//
// # Knobs (environment)
//
//   - GEOREP_BENCH_SCALE: multiplies the file counts and sizes (1: the sizes
//     above; 0.02 for a quick run).
//   - GEOREP_BENCH_LATENCY_N: single-file writes for the latency (default 50
//     × scale, at least 5).
//   - GEOREP_BENCH_ROLLOVER: changelog.rollover-time of the master volumes
//     (default 5s).
//   - GEOREP_BENCH_GSYNCD_CHANGE_INTERVAL: gsyncd's change_interval in
//     seconds (default 1).
//   - GEOREP_BENCH_GSYNCD_STOCK=1: no secondary-access-mount (see above).
//   - GEOREP_BENCH_TOOLS: "gsyncd", "georep" or both (default).
//   - GEOREP_BENCH_GEOREP_ARGS: extra georep-master arguments, space-separated.
//   - GEOREP_BENCH_LOGS: a directory where the georep daemons' logs are
//     written when they stop (<benchmark>.<binary>.log).
package bench
