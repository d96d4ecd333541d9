package crawl

import (
	"bytes"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
)

// The *xattrat system calls (Linux 6.13) name a file by directory and name,
// as the other *at calls do: one name looked up, where l*xattr on
// /proc/self/fd/N/name walks procfs first. A no-change crawl lists the
// xattrs of every file: at 1,000,000 files that listing was 18 % of the
// master's CPU through procfs. Their numbers are the same on every
// architecture with the generic table's late additions.
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
	xattratOnce sync.Once
	xattratOK   bool
)

// haveXattrat says whether the kernel has listxattrat and getxattrat and
// lets this process call them: probes of the root directory must answer as
// llistxattr and lgetxattr would. An old kernel says ENOSYS, a seccomp
// filter ENOSYS or EPERM: then the procfs path is used.
func haveXattrat() bool {
	xattratOnce.Do(func() {
		_, lerr := listxattrat(unix.AT_FDCWD, "/", nil)
		_, gerr := getxattrat(unix.AT_FDCWD, "/", "user.georep.probe", nil)
		xattratOK = (lerr == nil || lerr == unix.ENOTSUP) && (gerr == nil || gerr == unix.ENODATA || gerr == unix.ENOTSUP)
	})
	return xattratOK
}

// listxattrat lists the xattr names of name in dirfd without following a
// symlink, as llistxattr on the path would.
func listxattrat(dirfd int, name string, dest []byte) (int, error) {
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

// getxattrat reads attribute attr of name in dirfd without following a
// symlink, as lgetxattr on the path would.
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

// readSized calls get with a buffer large enough for what it reads: a
// first try in a small one, then the size get(nil) reports (the value may
// grow in between: ERANGE again, a few times).
func readSized(get func(dest []byte) (int, error)) ([]byte, error) {
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

// userXattrsAt is userXattrs through listxattrat and getxattrat.
func userXattrsAt(dirfd int, name string) (map[string][]byte, error) {
	list, err := readSized(func(d []byte) (int, error) { return listxattrat(dirfd, name, d) })
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	var m map[string][]byte
	for len(list) > 0 {
		k := list
		if i := bytes.IndexByte(list, 0); i >= 0 {
			k, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		if !bytes.HasPrefix(k, []byte("user.")) {
			continue
		}
		attr := string(k)
		v, err := readSized(func(d []byte) (int, error) { return getxattrat(dirfd, name, attr, d) })
		if err != nil {
			if err == unix.ENODATA {
				continue // removed since the listing
			}
			return nil, err
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[attr] = v
	}
	return m, nil
}
