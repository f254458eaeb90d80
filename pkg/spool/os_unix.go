//go:build unix

package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// errLocked is tryLock's error when another process holds the lock.
var errLocked error = unix.EWOULDBLOCK

// tryLock takes an exclusive flock on f without waiting. The kernel drops it
// when the process exits, however it exits.
func tryLock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// syncDir makes created, renamed and removed names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
