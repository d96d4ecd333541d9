// Package slave is the georep slave daemon: the gRPC service a master drives
// (handshake and session lease, entry and meta ops, xtime marks, purge,
// listings, stat, and the rsync byte tunnel), applied to a confined replica
// by package slave/replica. It corresponds to gsyncd's resource.py Server and
// the slave half of its ssh + repce channel.
package slave
