// Package integration holds georep's end-to-end tests: they build the real
// georep-master and georep-slave, start the slave on a loopback port with a
// real rsync, replicate real trees and compare them whole. It has no
// gsyncd counterpart (GlusterFS tests geo-replication with its regression
// scripts, tests/00-geo-rep).
package integration
