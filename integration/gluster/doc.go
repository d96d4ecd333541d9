// Package gluster runs a single-node GlusterFS for tests: it starts (or
// reuses) glusterd on the loopback interface, creates volumes whose bricks
// live in the test's temporary directory, optionally with the changelog
// translator on, mounts them with the FUSE client (plainly or with gsyncd's
// aux-gfid flags) and tears down everything it created when the test ends.
// It is what tests of georep against a real GlusterFS master build on: the
// bricks carry real gfids (trusted.gfid) and real changelogs
// (<brick>/.glusterfs/changelogs), the format gsyncd's libgfchangelog reads.
//
// # What it needs
//
// Root, /dev/fuse, and the glusterd, gluster and glusterfs binaries (Debian
// packages glusterfs-server and glusterfs-client; make deps installs them).
// Require skips the test when any of them is missing.
//
// # What it touches on the host
//
//   - /etc/hosts: the name [Host] is mapped to 127.0.0.1 by appending one line
//     (once; nothing is written when the name is already there). The gluster
//     CLI refuses localhost and 127.0.0.1 as brick hosts, and a name that
//     resolves to a loopback address is local to glusterd.
//   - /etc/glusterfs/glusterd.vol: when the harness starts glusterd itself,
//     it first makes sure the management volume has
//     "option transport.socket.bind-address 127.0.0.1", inserting it once and
//     keeping the original as glusterd.vol.georep-orig. A glusterd that is
//     already running is used as it is and never stopped.
//   - glusterd's state in /var/lib/glusterd and its logs in /var/log/glusterfs
//     (glusterd keeps those in fixed places). Volumes are named after the test
//     with a random suffix; each is stopped and deleted when its test ends.
//
// The harness stops and unmounts only what it started itself, by process id
// and mount point: the glusterd it started (when the last test using it
// ends), the volumes it created and the FUSE clients it ran. If the test
// process is killed, a glusterd it started keeps running; the next run uses
// it and leaves it running.
package gluster
