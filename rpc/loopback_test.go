package rpc

import "testing"

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7101": true, "127.3.2.1:1": true, "[::1]:7101": true, "::1": true, "localhost:7101": true,
		"LOCALHOST": true, "0.0.0.0:7101": false, ":7101": false, "10.0.0.1:7101": false, "[::]:7101": false,
		"node1:7101": false, "localhost.example.com:1": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
