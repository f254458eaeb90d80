package pki

import (
	"os"
	"syscall"
	"unsafe"
)

// The standard library's syscall package has no LockFileEx, and pki uses
// the standard library only (see deps_test.go), so the two calls are
// loaded from kernel32 by hand, as golang.org/x/sys/windows would.
var (
	kernel32         = syscall.NewLazyDLL("kernel32.dll")
	procLockFileEx   = kernel32.NewProc("LockFileEx")
	procUnlockFileEx = kernel32.NewProc("UnlockFileEx")
)

const lockfileExclusiveLock = 0x2 // LOCKFILE_EXCLUSIVE_LOCK

// lockFile waits for an exclusive LockFileEx lock on f's first byte, the
// Windows counterpart of flock: Windows drops it when the process exits.
// The lock file holds no data, so the mandatory lock stops no reader.
func lockFile(f *os.File) error {
	var ol syscall.Overlapped
	r, _, err := procLockFileEx.Call(f.Fd(), lockfileExclusiveLock, 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
	if r == 0 {
		return err
	}
	return nil
}

// unlockFile releases lockFile's lock.
func unlockFile(f *os.File) error {
	var ol syscall.Overlapped
	r, _, err := procUnlockFileEx.Call(f.Fd(), 0, 1, 0, uintptr(unsafe.Pointer(&ol)))
	if r == 0 {
		return err
	}
	return nil
}
