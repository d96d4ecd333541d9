// Package glusterfs is the slave's replica on a GlusterFS volume, mounted
// with the GlusterFS FUSE client in aux-gfid mode, the way gsyncd's slave
// works (resource.py Server.entry_ops and Server.meta_ops, with gsyncd's
// glusterfs.gfid.newfile blobs from py2py3.py entry_pack_*).
//
// It is a backend of the apply engine (package slave/apply), which decides
// what every operation does: this package reaches inodes as .gfid/<gfid>,
// creates them with the master's gfid through glusterfs.gfid.newfile on
// .gfid/<pargfid>, links, renames and removes through .gfid/<pargfid>/<name>,
// reads gfids from glusterfs.gfid.string and finds where a directory lives
// from the volume's path attributes (dirLocation). Unlike the plain-directory
// replica (package slave/replica) it keeps no gfid index of its own:
// GlusterFS gives every inode the master's gfid and resolves
// <mount>/.gfid/<gfid> itself. It reserves ".gfid" in the volume root and
// hides GlusterFS's own names there (InternalRootNames).
//
// The package owns the glusterfs client process (run by rpc/glusterfs/mount,
// which the master shares): Open mounts the volume on a private directory (with nosymfollow, so nothing a master names can make the
// kernel follow a symlink stored on the volume), and Close unmounts it (never
// lazily) and reaps the client.
//
// Confinement: every path is resolved beneath the mount with openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), names are validated with
// ops.ValidateName and gfids parsed strictly before anything is touched.
//
// Concurrency: a Volume is safe for concurrent use. Operations run one at a
// time, except the creates of one run of independent creates, and meta ops
// or writes of distinct gfids, which the engine applies with eight workers.
package glusterfs
