// Package integration holds georep's end-to-end tests: they build the real
// georep-master and georep-slave, start the slave on a loopback port with a
// real rsync, replicate real trees and compare them whole. It has no
// gsyncd counterpart (GlusterFS tests geo-replication with its regression
// scripts, tests/00-geo-rep).
//
// GEOREP_E2E_KEEP_LOGS=DIR keeps the whole output of every daemon and
// --oneshot run a test starts in DIR/<test>/ (a failed test shows only the
// end of each); the GlusterFS master tests also keep there, when they fail,
// a listing of the master and replica bricks with gfids and the master
// bricks' changelogs. With GEOREP_LOG_LEVEL=debug the master logs every
// record it processes.
package integration
