package harness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// FlatDir and FlatName are where PopulateFlat puts file i: 200 files a
// directory, d000/f00000 on.
func FlatDir(i int) string  { return fmt.Sprintf("d%03d", i/200) }
func FlatName(i int) string { return fmt.Sprintf("f%05d", i) }

// PopulateFlat fills root with files regular files of size random bytes
// each (the same bytes for the same arguments), 200 to a directory
// (FlatDir, FlatName), and returns the bytes written: the benchmarks' trees.
func PopulateFlat(root string, files, size int) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, size)
	var total int64
	for i := range files {
		dir := filepath.Join(root, FlatDir(i))
		if i%200 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return total, err
			}
		}
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, FlatName(i)), buf, 0o644); err != nil {
			return total, err
		}
		total += int64(size)
	}
	return total, nil
}
