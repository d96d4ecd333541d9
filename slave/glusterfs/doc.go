// Package glusterfs is the slave's replica on a GlusterFS volume: it applies
// georep's entry and metadata operations by gfid to a volume mounted with
// the GlusterFS FUSE client in aux-gfid mode, the way gsyncd's slave does
// (resource.py Server.entry_ops and Server.meta_ops, with gsyncd's
// glusterfs.gfid.newfile blobs from py2py3.py entry_pack_*). Unlike the
// plain-directory replica (package slave/replica) it keeps no gfid index of
// its own: GlusterFS gives every inode the master's gfid and resolves
// <mount>/.gfid/<gfid> itself.
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
// Concurrency: a Volume serialises its operations; it is safe for concurrent
// use.
package glusterfs
