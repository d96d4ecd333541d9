// Package syncer tests the master's sync jobs (master/syncer) against the
// slave's rsync server (slave.ServeRsync) in one process: the real rsync on
// both sides, the test binary itself as the -e tunnel command, a real gRPC
// server between them. It lives here because only integration/ may import
// both master and slave packages. It has no gsyncd counterpart.
package syncer
