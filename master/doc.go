// Package master is the georep master daemon: one worker that detects changes
// in the source (for a plain directory, the hybrid crawl of master/crawl),
// processes the resulting changelogs against the slave (entry ops, meta ops,
// data through the sync jobs of master/syncer), and keeps the resume point
// (stime) and crawl statistics in its work dir. It corresponds to gsyncd's
// master.py (GMaster*Mixin, the keep-alive and crawl stats) and the master
// half of resource.py.
package master
