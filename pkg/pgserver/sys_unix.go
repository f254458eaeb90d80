//go:build unix

package pgserver

import (
	"os"
	"syscall"
)

// credential is the account initdb and postgres run as when we are root.
type credential = syscall.Credential

// errPlatform is nil where the private PostgreSQL can run.
var errPlatform error

// fileOwner returns the uid owning fi.
func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }
