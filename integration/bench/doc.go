// Package bench compares georep with a local `rsync -a` on the same trees,
// in the same run, on the same disk: `make bench`. It has no gsyncd
// counterpart (integration/gluster/bench compares georep with gsyncd).
package bench
