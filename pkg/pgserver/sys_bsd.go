//go:build unix && !linux

package pgserver

import "syscall"

// procAttr puts the child in its own process group and, when cred is set,
// runs it as that account. macOS and the BSDs have no parent-death signal:
// a consumer killed with SIGKILL leaves its server running, and the next
// Start fails with postgres's own "lock file postmaster.pid already exists"
// in the log tail it returns; stop the orphan with pg_ctl -D DATA_DIR stop.
func procAttr(cred *credential) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if cred != nil {
		a.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: []uint32{}}
	}
	return a
}

// noBinaries is the text of ErrNoBinaries: where we looked and how to
// install them on macOS.
const noBinaries = "PostgreSQL server binaries (initdb, postgres) not found on PATH; install them with: brew install postgresql (or put Postgres.app's bin directory on PATH)"
