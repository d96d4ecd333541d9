package apply

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xattrArgs is the kernel's struct xattr_args (getxattrat(2), Linux 6.13).
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// sysGetxattrat is getxattrat's number on every architecture that has the
// generic syscall table's late additions (it is 464 on all of them).
const sysGetxattrat = 464

var (
	xattratOnce sync.Once
	xattratOK   bool
)

// haveGetxattrat says whether the kernel has getxattrat and lets this
// process call it: a probe of the root directory must answer as getxattr
// would (the attribute, ENODATA or ENOTSUP). An old kernel says ENOSYS, a
// seccomp filter ENOSYS or EPERM: then the procfs path is used.
func haveGetxattrat() bool {
	xattratOnce.Do(func() {
		_, err := getxattrat(unix.AT_FDCWD, "/", "user.georep.probe", nil)
		xattratOK = err == nil || err == unix.ENODATA || err == unix.ENOTSUP
	})
	return xattratOK
}

// getxattrat reads attribute attr of name in the directory dirfd without
// following a symlink, as lgetxattr on the path would: one name looked up,
// where lgetxattr on /proc/self/fd/N/name walks procfs first (twice the
// cost of the call, which verify's listing of the slave pays per entry).
func getxattrat(dirfd int, name, attr string, dest []byte) (int, error) {
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
