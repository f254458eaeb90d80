package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync makes f's data durable with the metadata needed to read it back
// (its size) but not its times, which fsync would also write.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
