package rpc

import (
	"net"
	"strings"
)

// IsLoopback says whether addr (host:port, or a host) names this machine
// only: localhost or an address of 127.0.0.0/8 or ::1. Plaintext is allowed
// there without asking: nothing crosses a network.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
