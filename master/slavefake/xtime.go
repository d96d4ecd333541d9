package slavefake

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// SetXtime marks the inode of g with the xtime of the slave's master
// volume (New's volumeID), as the master's session client does.
func (s *Slave) SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error {
	return s.SetVolumeXtime(ctx, g, s.volumeID, t.Unix(), int32(t.Nanosecond()))
}

// SetVolumeXtime records master volume volumeID's xtime (sec, nsec) on the
// inode of g, as every replica does (8+4 bytes big endian).
func (s *Slave) SetVolumeXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	vol, err := gfid.Parse(volumeID)
	if err != nil {
		return errorf(syscall.EINVAL, "set xtime on %s: volume id: %v", g, err)
	}
	if nsec < 0 || nsec >= 1e9 {
		return errorf(syscall.EINVAL, "set xtime on %s: nanoseconds %d out of range", g, nsec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.node(g)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	var v [12]byte
	binary.BigEndian.PutUint64(v[:8], uint64(sec))
	binary.BigEndian.PutUint32(v[8:], uint32(nsec))
	if in.xtimes == nil {
		in.xtimes = map[string][12]byte{}
	}
	in.xtimes[vol.String()] = v
	return nil
}

// Xtime reads master volume volumeID's xtime from the inode of g; ok is
// false when the inode carries none.
func (s *Slave) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	vol, err := gfid.Parse(volumeID)
	if err != nil {
		return 0, 0, false, errorf(syscall.EINVAL, "xtime of %s: volume id: %v", g, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.node(g)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	v, ok := in.xtimes[vol.String()]
	if !ok {
		return 0, 0, false, nil
	}
	return int64(binary.BigEndian.Uint64(v[:8])), int32(binary.BigEndian.Uint32(v[8:])), true, nil
}
