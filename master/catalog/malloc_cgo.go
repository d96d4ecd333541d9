//go:build cgo && linux

package catalog

/*
#include <malloc.h>
#include <stdlib.h>

// Built with cgo, Pebble's block cache and memtables are C memory (malloc).
// glibc gives a thread its own arena the first time it mallocs (up to 8 a
// core), and Pebble's goroutines run on whichever threads: a cache block
// freed into one arena is reused only by the threads of that arena, so the
// arenas together hold far more than the cache. One arena: measured at
// 1,000,000 files (GEOREP_MEMPROFILE), C memory at a no-change pass's peak
// was 110-126 MB with glibc's default and 67 MB with one arena, for a 64 MB
// cache and 4 MB memtables (ARCHITECTURE.md, "The catalog's store").
//
// A constructor, so that it runs before Go's runtime starts the threads
// whose first malloc would make an arena each (set from a Go init it left
// 98 MB). MALLOC_ARENA_MAX, when set, decides instead; elsewhere than glibc
// (musl has no M_ARENA_MAX) it does nothing.
__attribute__((constructor)) static void georep_one_arena(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		mallopt(M_ARENA_MAX, 1);
	}
#endif
}
*/
import "C"
