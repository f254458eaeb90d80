//go:build !linux

package spool

import "os"

// fdatasync is f.Sync outside Linux: macOS has no fdatasync (Go's Sync
// there is F_FULLFSYNC, which also flushes the drive's cache) and Windows
// has only FlushFileBuffers.
func fdatasync(f *os.File) error { return f.Sync() }
