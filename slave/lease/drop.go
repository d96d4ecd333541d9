package lease

// DropLock does to a held lease what a GlusterFS brick does when it loses
// the holder's connection: the lock goes, while the holder still believes
// it holds the lease (its next Check finds out). For tests of fencing.
func DropLock(l *Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Close()
	f, err := openFile(l.s, l.set)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}
