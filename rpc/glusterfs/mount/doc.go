// Package mount runs the GlusterFS FUSE client (glusterfs -N) as a child of
// this process and owns its mount: start it, wait until the volume answers,
// optionally remount with safer flags, and unmount it in order (never
// lazily) and reap the client. It also says what /proc/self/mountinfo
// shows on a directory (Lookup, read with github.com/moby/sys/mountinfo).
// The master mounts its volume with it for the aux-gfid reads, the slave
// its replica volume. gsyncd's counterpart is resource.py's
// GLUSTER.MountbrokerMixin / DirectMounter, without the lazy unmount.
package mount
