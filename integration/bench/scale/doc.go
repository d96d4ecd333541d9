// Package scale measures georep on large trees of small files — time,
// files/s, peak memory of master and slave, and the master's catalog on
// disk — beside `rsync -a` on the same tree, in the same run, on the same
// disk: `make bench-scale`, issue 15 ("Ten million files"). rsync is the
// reference for memory too: since 3.0 its incremental recursion sends the
// file list a directory at a time, so its peak RSS grows with the largest
// directory rather than with the tree (13-14 MB from 100k to 1M files,
// measured) — what a master that walks a directory at a time can reach.
//
//	make bench-scale
//	GEOREP_BENCH_SCALE=10M make bench-scale
//	GEOREP_BIN=$(pwd)/bin go test -count=1 -timeout 4h -run '^$' -bench . -benchtime 1x ./integration/bench/scale/
//
// For each size, one after the other:
//
//  1. a tree of N files, GEOREP_BENCH_FILES_PER_DIR (1000) to a directory,
//     the directories side by side under the tree's root, written by a few
//     goroutines;
//  2. `rsync -a SRC/ DST/` into a fresh target, then again with nothing
//     changed; the target is removed;
//  3. georep: a fresh georep-slave on loopback (mutual TLS, as `make bench`)
//     and one `georep-master --oneshot` into an empty replica; then a new
//     slave and a second --oneshot with nothing changed, with the same work
//     dir. The replica is checked against the source after the first pass
//     (harness.QuickCompare: names, types, modes, sizes, times).
//
// Each pass reports its time and files/s (files, not counting directories).
// Peak RSS: for rsync and georep-master the Maxrss of wait4's rusage, which
// Linux gives as the largest of the process and of the descendants it waited
// for (rsync's sender, receiver and generator: the largest, not their sum;
// the master's rsync and tunnel children when it has any; empty files go
// through WriteFiles, with none); the master's own VmHWM, sampled every
// 200 ms, is printed beside it to tell the two apart. For georep-slave, a
// server, its VmHWM from /proc/PID/status read after the master has exited
// and before the slave is stopped (its rsync children, when file data goes
// through rsync, are not counted). The master's state on disk: catalog.db's
// size (and the blocks it occupies) and the whole work dir's.
//
// The figures are printed as they come, with progress (the tree's writer,
// the master's progress log lines, a line every 30 s of a long process),
// and at the end as a markdown table for the README's Performance section,
// also written to a file whose name is printed (bench-scale.md in the run's
// directory, or GEOREP_BENCH_OUT). Nothing is asserted about the figures.
//
// Knobs (environment):
//
//   - GEOREP_BENCH_SCALE: the sizes, a comma-separated list of file counts
//     (200000, 100k, 1M, 10M); default 100k,1M.
//   - GEOREP_BENCH_FILES_PER_DIR: files per directory (default 1000).
//   - GEOREP_BENCH_FILE_SIZE: bytes per file (default 0: empty files; the
//     issue is about metadata at scale); 4k or 4KiB mean 4096.
//   - GEOREP_BENCH_DIR: where the run's directory is made (default /var/tmp,
//     else the system's temporary directory): tree, rsync's target, replica
//     and work dir, all on one disk. They are removed after each size.
//   - GEOREP_BENCH_OUT: the markdown table's file.
//   - GEOREP_BENCH_KEEP=1: leave each size's tree, replica, work dir and
//     master logs (master-pass1.log, master-pass2.log) behind, for a look or
//     a profile.
//   - GEOREP_BENCH_MAX_RSS: a process whose RSS passes this is killed and
//     the size reported failed (default 80 % of MemAvailable at the start:
//     the machine is shared, and a master whose memory grows with the tree
//     would otherwise meet the kernel's OOM killer, which may pick another
//     process).
//   - GEOREP_BENCH_PASS_TIMEOUT: --oneshot-timeout of each pass (default
//     12h).
//   - GEOREP_CPUPROFILE: passed on to georep-master and georep-slave, which
//     then write a CPU profile of their run there (%n: the program, %p: its
//     pid; e.g. /tmp/prof-%n-%p).
//
// Before each size the free space and inodes of the run's filesystem are
// checked (statfs) against what the size needs at its peak (the tree and
// one copy, the gfid index and the work dir; about 2 KiB and 2 inodes a
// file with empty files); a size that does not fit is skipped, saying why,
// and appears so in the table.
package scale
