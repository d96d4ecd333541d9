#!/bin/bash
# cluster.sh: a GlusterFS pool on one machine for georep's tests. Masters m1 m2 m3
# (volume mvol, distributed-replicate 2x3) and slaves s1 s2 (volume svol, distribute),
# each node in its own network, mount and UTS namespaces with its own glusterd
# state, run, log and config directories, joined by a bridge in a "switch"
# network namespace. Nothing is added to the host's network namespace.
#
#   cluster.sh up                 create everything (reuses a healthy pool that is already up)
#   cluster.sh down               remove everything up made
#   cluster.sh exec NODE CMD...   run CMD in NODE's namespaces; exits with CMD's status
#   cluster.sh partition NODE     cut NODE's link (its port on the bridge goes down)
#   cluster.sh heal NODE          restore it
#
# Environment: GEOREP_CLUSTER_DIR (state, default /run/georep-cluster),
# GEOREP_CLUSTER_DATA (bricks, per-node directories, default /var/tmp/georep-cluster),
# GEOREP_CLUSTER_ROLLOVER (changelog.rollover-time of mvol, default 1),
# GEOREP_CLUSTER_PING_TIMEOUT (network.ping-timeout of both volumes, default 5),
# GEOREP_CLUSTER_KEEP=1 (a failed up leaves what it made, for a post-mortem).
# See README.md next to this script.
set -euo pipefail

STATE=${GEOREP_CLUSTER_DIR:-/run/georep-cluster}
DATA=${GEOREP_CLUSTER_DATA:-/var/tmp/georep-cluster}
ROLLOVER=${GEOREP_CLUSTER_ROLLOVER:-1}
PING_TIMEOUT=${GEOREP_CLUSTER_PING_TIMEOUT:-5}
NS=$STATE/ns
SUBNET=10.77.0
MASTERS=(m1 m2 m3)
SLAVES=(s1 s2)
NODES=("${MASTERS[@]}" "${SLAVES[@]}")
BRICKS=$DATA/bricks # the brick directory's path inside every node (each node's own)
WAIT=${GEOREP_CLUSTER_WAIT:-90} # seconds any one wait may take

PATH=$PATH:/usr/sbin:/sbin

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

addr() {
	case $1 in
	m1) echo $SUBNET.11 ;; m2) echo $SUBNET.12 ;; m3) echo $SUBNET.13 ;;
	s1) echo $SUBNET.21 ;; s2) echo $SUBNET.22 ;;
	*) die "unknown node '$1' (nodes: ${NODES[*]})" ;;
	esac
}

node_dir() { echo "$DATA/nodes/$1"; }

# in NODE CMD...: run CMD in NODE's namespaces, the working directory kept.
on() {
	local n=$1
	shift
	nsenter --net="$NS/$n.net" --mount="$NS/$n.mnt" --uts="$NS/$n.uts" --wd="$PWD" -- "$@"
}
in_switch() { nsenter --net="$NS/switch.net" -- "$@"; }
gl() {
	local n=$1
	shift
	on "$n" timeout 60 gluster --mode=script "$@"
}

require() {
	[ "$(id -u)" = 0 ] || die "needs root (namespaces, glusterd, FUSE mounts)"
	[ -c /dev/fuse ] || die "needs /dev/fuse (FUSE mounts of the volumes inside the nodes)"
	local c
	for c in ip unshare nsenter mount umount flock timeout glusterd gluster glusterfs glusterfsd mount.glusterfs; do
		command -v "$c" >/dev/null || die "$c not found (make deps installs glusterfs-server, glusterfs-client, iproute2, util-linux)"
	done
}

# ns_inode FILE: the inode of the namespace bound at FILE (what /proc/PID/ns/* link to).
ns_inode() { stat -L -c %i "$1" 2>/dev/null; }

# node_pids NODE: every process in NODE's network or mount namespace.
node_pids() {
	local net mnt p l
	net=$(ns_inode "$NS/$1.net") || true
	mnt=$(ns_inode "$NS/$1.mnt") || true
	for p in /proc/[0-9]*; do
		l=$(readlink "$p/ns/net" 2>/dev/null) || continue
		if [ -n "$net" ] && [ "$l" = "net:[$net]" ]; then
			echo "${p#/proc/}"
			continue
		fi
		l=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
		if [ -n "$mnt" ] && [ "$l" = "mnt:[$mnt]" ]; then echo "${p#/proc/}"; fi
	done
}

is_mounted() { grep -qs " $1 " /proc/self/mountinfo; }

# ---- up ----------------------------------------------------------------------

hosts_file() {
	echo "127.0.0.1 localhost"
	echo "::1 localhost ip6-localhost ip6-loopback"
	local n
	for n in "${NODES[@]}"; do echo "$(addr "$n") $n"; done
}

# node_glusterd_vol: the host's glusterd.vol with the bind address set to the node's.
node_glusterd_vol() {
	local src=$1 ip=$2
	grep -v 'option transport.socket.bind-address' "$src" |
		awk -v ip="$ip" '/^[[:space:]]*end-volume/ && !done { print "    option transport.socket.bind-address " ip; done=1 } { print }'
}

make_node() {
	local n=$1 d ip
	d=$(node_dir "$n")
	ip=$(addr "$n")
	mkdir -p "$d"/{lib,run,log,bricks} "$d"/run/{gluster,lock,mount}
	# The node's own /etc/glusterfs: glusterd.vol binds to the node's address.
	rm -rf "$d/etc"
	cp -a /etc/glusterfs "$d/etc"
	node_glusterd_vol /etc/glusterfs/glusterd.vol "$ip" >"$d/etc/glusterd.vol"
	# The groups of options (gluster volume set VOL group NAME); no hook scripts: those
	# of the host's packages (samba, ctdb) would act on the host.
	[ -d /var/lib/glusterd/groups ] && cp -a /var/lib/glusterd/groups "$d/lib/"
	touch "$NS/$n.net" "$NS/$n.mnt" "$NS/$n.uts"
	# The mounts are made inside the new (private) mount namespace; the bind of
	# $NS is dropped there so that it holds no reference to other nodes' namespaces.
	unshare --net="$NS/$n.net" --mount="$NS/$n.mnt" --uts="$NS/$n.uts" --propagation private \
		sh -euc '
			d=$1 n=$2 ns=$3 bricks=$4 hosts=$5
			hostname "$n"
			mkdir -p "$bricks"
			mount --bind "$d/lib" /var/lib/glusterd
			mount --bind "$d/log" /var/log/glusterfs
			mount --bind "$d/etc" /etc/glusterfs
			mount --bind "$hosts" /etc/hosts
			mount --bind "$d/bricks" "$bricks"
			umount -l "$ns"
			mount --bind "$d/run" /run
		' sh "$d" "$n" "$NS" "$BRICKS" "$STATE/hosts"
	in_switch ip link add "v-$n" type veth peer name eth0 netns "$NS/$n.net"
	in_switch ip link set "v-$n" master br0 up
	on "$n" ip link set lo up
	on "$n" ip addr add "$ip/24" dev eth0
	on "$n" ip link set eth0 up
}

start_glusterd() {
	local n=$1
	# Not holding the lock of cluster.sh (fd 9) for its lifetime.
	on "$n" glusterd -p /run/glusterd.pid --log-level INFO 9>&-
}

# wait_for WHAT CMD...: retry CMD every half second for $WAIT seconds.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT)) out=""
	shift
	until out=$("$@" 2>&1); do
		if [ $SECONDS -ge $deadline ]; then
			die "timed out after ${WAIT}s waiting for $what; last output:
$out"
		fi
		sleep 0.5
	done
}

# peers_connected NODE COUNT: NODE sees COUNT peers, all in the pool and connected.
peers_connected() {
	local out
	out=$(gl "$1" peer status) || { echo "$out"; return 1; }
	local ok
	ok=$(grep -c 'State: Peer in Cluster (Connected)' <<<"$out" || true)
	[ "$ok" = "$2" ] || { echo "$out"; return 1; }
}

# bricks_online NODE VOL COUNT: gluster volume status VOL (from NODE) shows COUNT bricks online.
bricks_online() {
	local out n
	out=$(gl "$1" volume status "$2" detail) || { echo "$out"; return 1; }
	n=$(grep -cE '^Online +: Y' <<<"$out" || true)
	[ "$n" = "$3" ] || { echo "$out"; return 1; }
}

pool_healthy() {
	local n pid
	for n in "${NODES[@]}"; do
		[ -e "$NS/$n.net" ] || return 1
		pid=$(cat "$(node_dir "$n")/run/glusterd.pid" 2>/dev/null) || return 1
		kill -0 "$pid" 2>/dev/null || return 1
		gl "$n" volume list >/dev/null 2>&1 || return 1
	done
}

summary() {
	local n
	echo "georep cluster up (state $STATE, data $DATA)"
	for n in "${NODES[@]}"; do
		printf '  %-3s %-12s glusterd pid %s uuid %s\n' "$n" "$(addr "$n")" \
			"$(cat "$(node_dir "$n")/run/glusterd.pid")" "$(sed -n 's/^UUID=//p' "$(node_dir "$n")/lib/glusterd.info")"
	done
	echo "  mvol: distributed-replicate 2 x 3: (m1 m2 m3):$BRICKS/mvol1 (m1 m2 m3):$BRICKS/mvol2"
	echo "  svol: distribute: s1:$BRICKS/svol s2:$BRICKS/svol"
	echo "  network.ping-timeout $PING_TIMEOUT on both, changelog on mvol (rollover ${ROLLOVER}s)"
}

cmd_up() {
	require
	if [ -e "$STATE/up" ]; then
		if pool_healthy; then
			say "already up in $STATE: reusing it (links healed, stopped bricks restarted)"
			local n
			for n in "${NODES[@]}"; do in_switch ip link set "v-$n" up; done
			wait_ready
			summary
			return 0
		fi
		die "a pool in $STATE is up but not healthy (a glusterd died?): run 'cluster.sh down' first"
	fi
	[ -e "$STATE" ] && die "$STATE exists but up did not finish there: run 'cluster.sh down' first"
	[ -e "$DATA" ] && die "$DATA exists (left by an earlier pool?): run 'cluster.sh down' first"
	mkdir -p "$NS" "$DATA"
	echo "$DATA" >"$STATE/data"
	# Namespace files must be on a mount that is not shared (as ip netns does with /run/netns).
	mount --bind "$NS" "$NS"
	mount --make-private "$NS"
	hosts_file >"$STATE/hosts"

	touch "$NS/switch.net"
	unshare --net="$NS/switch.net" true
	in_switch ip link set lo up
	in_switch ip link add br0 type bridge
	in_switch ip link set br0 up

	local n
	for n in "${NODES[@]}"; do make_node "$n"; done
	for n in "${NODES[@]}"; do start_glusterd "$n"; done
	for n in "${NODES[@]}"; do wait_for "glusterd on $n" gl "$n" volume list; done

	# Two trusted pools, as two sites are. The second probe back makes the
	# first node known by name rather than by address.
	gl m1 peer probe m2 >/dev/null
	gl m1 peer probe m3 >/dev/null
	gl s1 peer probe s2 >/dev/null
	for n in "${MASTERS[@]}"; do wait_for "$n to see 2 connected peers" peers_connected "$n" 2; done
	for n in "${SLAVES[@]}"; do wait_for "$n to see 1 connected peer" peers_connected "$n" 1; done
	gl m2 peer probe m1 >/dev/null
	gl s2 peer probe s1 >/dev/null

	for n in "${MASTERS[@]}"; do mkdir -p "$(node_dir "$n")/bricks/mvol1" "$(node_dir "$n")/bricks/mvol2"; done
	for n in "${SLAVES[@]}"; do mkdir -p "$(node_dir "$n")/bricks/svol"; done
	# force: the bricks are on the root file system.
	gl m1 volume create mvol replica 3 \
		m1:"$BRICKS"/mvol1 m2:"$BRICKS"/mvol1 m3:"$BRICKS"/mvol1 \
		m1:"$BRICKS"/mvol2 m2:"$BRICKS"/mvol2 m3:"$BRICKS"/mvol2 force >/dev/null
	gl m1 volume set mvol changelog.changelog on >/dev/null
	gl m1 volume set mvol changelog.rollover-time "$ROLLOVER" >/dev/null
	gl m1 volume set mvol geo-replication.indexing on >/dev/null
	gl m1 volume set mvol network.ping-timeout "$PING_TIMEOUT" >/dev/null
	gl s1 volume create svol s1:"$BRICKS"/svol s2:"$BRICKS"/svol force >/dev/null
	gl s1 volume set svol network.ping-timeout "$PING_TIMEOUT" >/dev/null
	gl m1 volume start mvol >/dev/null
	gl s1 volume start svol >/dev/null
	wait_ready
	touch "$STATE/up"
	summary
}

# wait_ready: peers connected, every brick online (volumes started with force
# while not, which restarts a brick that was killed).
wait_ready() {
	local n
	for n in "${MASTERS[@]}"; do wait_for "$n to see 2 connected peers" peers_connected "$n" 2; done
	for n in "${SLAVES[@]}"; do wait_for "$n to see 1 connected peer" peers_connected "$n" 1; done
	wait_for "the 6 bricks of mvol to be online" start_bricks m1 mvol 6
	wait_for "the 2 bricks of svol to be online" start_bricks s1 svol 2
}

# start_bricks NODE VOL COUNT: bricks_online, else start VOL with force (from NODE)
# and fail. A glusterd notices a brick killed with SIGKILL only seconds later;
# until then start force does not restart it, hence the retries.
start_bricks() {
	bricks_online "$@" && return 0
	gl "$1" volume start "$2" force
	sleep 2
	return 1
}

# ---- down --------------------------------------------------------------------

stop_node() {
	local n=$1 pids m deadline
	[ -e "$NS/$n.mnt" ] && [ -n "$(ns_inode "$NS/$n.mnt")" ] || return 0
	# FUSE mounts made in the node first (a client killed first leaves a dead mount).
	if [ "$(ns_inode "$NS/$n.mnt")" != "$(stat -L -c %i /proc/self/ns/mnt)" ]; then
		for m in $(on "$n" awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) ~ /^fuse/) print $5; break } }' /proc/self/mountinfo 2>/dev/null | sort -r); do
			on "$n" timeout 20 umount "$m" 2>/dev/null || on "$n" umount -l "$m" || true
		done
	fi
	pids=$(node_pids "$n")
	[ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
	deadline=$((SECONDS + 15))
	while pids=$(node_pids "$n") && [ -n "$pids" ]; do
		if [ $SECONDS -ge $deadline ]; then
			say "$n: killing what ignored SIGTERM: $(echo $pids)"
			kill -KILL $pids 2>/dev/null || true
			sleep 0.5
			pids=$(node_pids "$n")
			[ -z "$pids" ] || say "$n: still running: $(echo $pids)"
			break
		fi
		sleep 0.2
	done
}

cmd_down() {
	require
	if [ ! -e "$STATE" ]; then
		say "nothing is up in $STATE"
		# A data directory left by an up that failed early, when it is ours.
		[ ! -d "$DATA/nodes" ] || rm -rf "$DATA"
		return 0
	fi
	local data n f left=0
	data=$(cat "$STATE/data" 2>/dev/null || echo "$DATA")
	DATA=$data
	for n in "${NODES[@]}"; do stop_node "$n"; done
	for n in "${NODES[@]}"; do [ -z "$(node_pids "$n")" ] || left=1; done
	for f in "$NS"/*; do
		[ -e "$f" ] || continue
		is_mounted "$f" && umount "$f"
	done
	is_mounted "$NS" && umount "$NS"
	[ $left = 0 ] || die "processes in the nodes' namespaces survived SIGKILL; $STATE kept"
	rm -rf "$STATE"
	rm -rf "$DATA"
	say "down: $STATE and $DATA removed"
}

# ---- the rest ----------------------------------------------------------------

need_up() { [ -e "$STATE/up" ] || die "no pool is up in $STATE (cluster.sh up)"; }

case ${1:-} in
up)
	exec 9>"$STATE.lock"
	flock -w 120 9 || die "another cluster.sh holds $STATE.lock"
	fresh=0
	[ -e "$STATE" ] || [ -e "$DATA" ] || fresh=1
	set +e
	(set -e; cmd_up)
	rc=$?
	set -e
	if [ $rc != 0 ]; then
		[ $fresh = 1 ] || exit 1 # a refusal, or a pool that was already up: not ours to remove
		[ "${GEOREP_CLUSTER_KEEP:-}" != 1 ] || die 'up failed; everything left as it is (GEOREP_CLUSTER_KEEP=1)'
		say "up failed; the end of the glusterd logs:"
		for n in "${NODES[@]}"; do
			f=$DATA/nodes/$n/log/glusterd.log
			[ -e "$f" ] && { echo "--- $n" >&2; tail -n 15 "$f" >&2; }
		done
		(set -e; cmd_down) || true
		rm -f "$STATE.lock"
		exit 1
	fi
	;;
down)
	exec 9>"$STATE.lock"
	flock -w 120 9 || die "another cluster.sh holds $STATE.lock"
	cmd_down
	rm -f "$STATE.lock"
	;;
exec)
	[ $# -ge 3 ] || die "usage: cluster.sh exec NODE CMD..."
	need_up
	addr "$2" >/dev/null
	n=$2
	shift 2
	exec nsenter --net="$NS/$n.net" --mount="$NS/$n.mnt" --uts="$NS/$n.uts" --wd="$PWD" -- "$@"
	;;
partition | heal)
	[ $# = 2 ] || die "usage: cluster.sh $1 NODE"
	need_up
	addr "$2" >/dev/null
	if [ "$1" = partition ]; then state=down; else state=up; fi
	in_switch ip link set "v-$2" "$state"
	;;
*)
	die "usage: cluster.sh up | down | exec NODE CMD... | partition NODE | heal NODE"
	;;
esac
