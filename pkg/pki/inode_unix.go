//go:build unix

package pki

import (
	"io/fs"
	"syscall"
)

// inode identifies a file across renames: a CRL replaced by rename within
// the same second and with the same size still counts as changed.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
