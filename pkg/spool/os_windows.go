package spool

import (
	"os"

	"golang.org/x/sys/windows"
)

// errLocked is tryLock's error when another process holds the lock.
var errLocked error = windows.ERROR_LOCK_VIOLATION

// lockOffset is where the locked byte lies: far past the end of the lock
// file, because Windows locks are mandatory and a lock on the pid it holds
// would stop the refused producer from reading it for its message.
const lockOffset = 1 << 40

// tryLock takes an exclusive LockFileEx lock on f without waiting, the
// Windows counterpart of flock: it belongs to the handle and Windows drops
// it when the process exits, however it exits.
func tryLock(f *os.File) error {
	ol := windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	return windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// syncDir does nothing on Windows, which has no way to flush a directory
// (FlushFileBuffers needs a handle open for writing, and a directory's is
// not); NTFS journals names itself, so a rename is atomic there, and it
// becomes durable when the journal is written.
func syncDir(dir string) error { return nil }
