// Package journal is the live change journal of a plain-directory master:
// a Producer fed by fanotify records which names in which directories of the
// source changed, and Read hands those records to the consumer, which
// re-examines just those names instead of walking the whole tree. It plays the
// part GlusterFS's changelog translator and libgfchangelog play for gsyncd
// (changelog.c rollover, HTIME index, gf_changelog_scan), for a directory
// that has no brick.
//
// # Events
//
// The producer marks the whole filesystem holding the source
// (FAN_MARK_FILESYSTEM) in a group that reports directory file handles and
// names (FAN_REPORT_DFID_NAME), and keeps the events whose directory is, when
// the event is read, the source or beneath it and not beneath an excluded
// path (the journal directory always is). A directory handle whose directory
// is gone (ESTALE) is kept: the consumer finds it stale, and the removal is
// also reported in its parent. Which records an event gives:
//
//	create, delete, moved_from, moved_to  E <dir> <name>
//	modify, close_write                   D <dir> <name>
//	attrib                                M <dir> <name>
//	on a directory itself (self events,   E|M <dir> .    (Record.Name "")
//	  attrib of a directory)
//	queue overflow                        O - .
//
// The kernel merges queued events on the same name, so the order of the
// records of one name is not the order of the operations: a record means
// "look at this name again", not "this operation happened". An Overflow
// record means events were lost: the consumer must crawl the whole source.
//
// # Files
//
// A generation is one producer run, identified by the Unix nanoseconds of its
// start (or one more than the newest generation already in the directory, so
// that generations sort in the order they ran). Its records go to JOURNAL.<gen>.<seq> (seq 1, 2, ...), text, one
// record per line after the header line
//
//	GEOREP-JOURNAL v1 gen <gen> seq <seq> start <unix-nanos>
//	<kind> <handle-type>:<hex of handle> <name>
//
// with the name percent-encoded by changelog.Escape, and "." for the
// directory itself (Linux never reports "." as the name of a child, and an
// encoded name is never "."). Every Rollover, a file that has records is
// fsynced, closed and indexed in HTIME.<gen>, one line per file
//
//	<seq> <start-unix-nanos> <end-unix-nanos> <records>
//
// and the next file is opened; when the producer stops, the current file is
// indexed even if empty and the index ends with the line "end <unix-nanos>".
//
// The records read from the fanotify descriptor at once are appended with a
// single write and not fsynced: the consumer reads a file while it is being
// written. A crash can lose the records still in the page cache; that loses
// nothing, because every process lifetime of the master starts with a full
// crawl and a new generation.
package journal
