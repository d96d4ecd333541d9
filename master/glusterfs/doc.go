// Package glusterfs is what the master daemon needs from a GlusterFS cluster
// when it runs on the cluster's brick nodes, one worker per local brick of
// the master volume:
//
//   - the volume's layout from the gluster CLI (ParseVolumeInfo, GetVolume),
//     whether georep can serve it from its bricks (Volume.Servable), and
//     which bricks are this node's (LocalNodeUUID, Volume.LocalBricks):
//     gsyncd's monitor.py (distribute, get_subvol_num) and syncdutils.py's
//     Volinfo. Unlike gsyncd, disperse volumes are refused;
//   - the brick's extended attributes in gsyncd's formats: trusted.gfid,
//     the xtime and the per-session stime and entry_stime marks on the brick
//     root, DHT linkto files and the brick's internal top-level names
//     (BrickGFID, BrickGFIDAt, XTime, Stime, SetStime, EntryStime,
//     SetEntryStime, IsLinkto, IsLinktoAt, BrickInternal): resource.py's Server (gfid,
//     xtime, stime, entry_stime, set_stime, linkto_check) and the
//     brickserver of resource.py GLUSTER.service_loop;
//   - the FUSE client that reads data by gfid through an aux-gfid mount
//     (Mount, Mounted.Close, names of rpc/glusterfs/mount's Start and
//     Client, which the slave shares): resource.py GLUSTER.MountbrokerMixin
//     / DirectMounter, without the lazy unmount;
//   - the brick's own changelogs, rolled over by the changelog translator
//     and indexed in HTIME files (History, Rolled, ChangelogEpoch):
//     libgfchangelog's history API (gf_history_changelog); Rolled lists the
//     day directories instead of libgfchangelog's live notification.
//
// The package reads and writes only what it is given (a brick path, a mount
// point); it runs the gluster CLI and the glusterfs client as child
// processes and never talks to glusterd otherwise.
package glusterfs
