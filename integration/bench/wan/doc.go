// Package wan is `make bench-wan`: georep against rsync over ssh at WAN
// latency, in one run, on the same trees and the same disk, the two tools
// alternating. Both go through the same kind of link, at 0, 50 and 100 ms
// round trip, with a capacity per direction (400 Mbit/s by default) that
// all the connections of a run share: where tc can add netem inside a
// network namespace, two namespaces joined by a veth pair with netem on
// both ends (delay RTT/2 and the rate; the master and rsync in one, sshd
// and the slave in the other); elsewhere a delay line the harness runs on
// loopback (harness.StartLinkProxy: the delay each way and the shared
// rate), which ssh and the master are pointed at. rsync -aH --numeric-ids
// --delete talks to an sshd the harness starts; georep-master --oneshot
// talks mutual TLS to a georep-slave. Every run goes into a fresh target.
//
// The workloads: 20,000 × 4 KiB, initial; 10,000 × 4 KiB synced, then 500
// renames, 500 deletes and 500 overwrites, the second sync timed; 4 × 256
// MiB, initial, with the link's utilisation. The result is a markdown table
// (tracker issue 16). Knobs, from the environment:
//
//	GEOREP_BENCH_SCALE=0.1        shrink every tree (file counts, big-file size)
//	GEOREP_BENCH_RTT=0,50,100     round trips, in ms
//	GEOREP_BENCH_MBIT=400         the link's capacity per direction
//	GEOREP_BENCH_WORKLOADS=small,ops,large
//	GEOREP_BENCH_LOGDIR=DIR       keep every georep-master's log there
//	GEOREP_BENCH_GEOREP_ARGS=...  extra georep-master flags
//	GEOREP_BENCH_LINK=auto        netem where it works, else the delay line;
//	                              proxy, netem (fail without it), or netns-bare
//	                              (the namespaces without netem: a check of
//	                              the plumbing, no WAN figure)
//
// The delay line is not netem: each side's TCP talks to it over loopback, so
// there is no loss and congestion control never sees the delay (see
// harness.StartDelayProxy). It has no gsyncd counterpart.
package wan
