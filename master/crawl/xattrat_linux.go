package crawl

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/xattrat"
)

// userXattrsAt is userXattrs through listxattrat and getxattrat.
func userXattrsAt(dirfd int, name string) (map[string][]byte, error) {
	list, err := xattrat.ReadSized(func(d []byte) (int, error) { return xattrat.List(dirfd, name, d) })
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
		v, err := xattrat.ReadSized(func(d []byte) (int, error) { return xattrat.Get(dirfd, name, attr, d) })
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
