// Package xattrat reads extended attributes by directory and name with the
// *xattrat system calls (Linux 6.13), as the other *at calls name a file:
// one name looked up, where l*xattr on /proc/self/fd/N/name walks procfs
// first (twice the cost of the call). The master's crawl lists the user.*
// xattrs of every file with them (18 % of a no-change pass's CPU through
// procfs at 1,000,000 files), the slave reads gfids with them. Available
// says whether this kernel has them; callers fall back to procfs.
package xattrat

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
)

// Their numbers are the same on every architecture with the generic
// syscall table's late additions.
const (
	sysGetxattrat  = 464
	sysListxattrat = 465
)

// xattrArgs is the kernel's struct xattr_args (getxattrat(2)).
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

var (
	probeOnce sync.Once
	available bool
)

// Available says whether the kernel has listxattrat and getxattrat and
// lets this process call them: probes of the root directory must answer as
// llistxattr and lgetxattr would. An old kernel says ENOSYS, a seccomp
// filter ENOSYS or EPERM.
func Available() bool {
	probeOnce.Do(func() {
		_, lerr := List(unix.AT_FDCWD, "/", nil)
		_, gerr := Get(unix.AT_FDCWD, "/", "user.georep.probe", nil)
		available = (lerr == nil || lerr == unix.ENOTSUP) && (gerr == nil || gerr == unix.ENODATA || gerr == unix.ENOTSUP)
	})
	return available
}

// List lists the xattr names of name in dirfd without following a
// symlink, as llistxattr on the path would (nil dest asks for the size).
func List(dirfd int, name string, dest []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	var buf unsafe.Pointer
	if len(dest) > 0 {
		buf = unsafe.Pointer(&dest[0])
	}
	r, _, e := unix.Syscall6(sysListxattrat, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unix.AT_SYMLINK_NOFOLLOW),
		uintptr(buf), uintptr(len(dest)), 0)
	runtime.KeepAlive(dest)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Get reads attribute attr of name in dirfd without following a symlink,
// as lgetxattr on the path would (nil dest asks for the size).
func Get(dirfd int, name, attr string, dest []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	a, err := unix.BytePtrFromString(attr)
	if err != nil {
		return 0, err
	}
	var args xattrArgs
	if len(dest) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&dest[0])))
		args.size = uint32(len(dest))
	}
	r, _, e := unix.Syscall6(sysGetxattrat, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unix.AT_SYMLINK_NOFOLLOW),
		uintptr(unsafe.Pointer(a)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(dest)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// ReadSized reads a variable-sized value (an attribute, a list of them)
// with get, which fills dest (nil dest asks for the size): a first try in
// a small buffer, then in one of the size reported (the value may grow in
// between: ERANGE again, a few times).
func ReadSized(get func(dest []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for range 8 {
		n, err := eintr.Value(func() (int, error) { return get(buf) })
		if err == nil {
			return buf[:n], nil
		}
		if err != unix.ERANGE {
			return nil, err
		}
		size, err := eintr.Value(func() (int, error) { return get(nil) })
		if err != nil {
			return nil, err
		}
		buf = make([]byte, size+64)
	}
	return nil, unix.ERANGE
}
