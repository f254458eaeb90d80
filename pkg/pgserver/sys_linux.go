package pgserver

import "syscall"

// procAttr puts the child in its own process group, ties its life to ours
// and, when cred is set, runs it as that account.
func procAttr(cred *credential) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Setpgid: true,
		// If we die without stopping the server (kill -9, a test binary
		// timing out), the kernel asks it for a fast shutdown, so no
		// orphan holds the data directory or the port.
		Pdeathsig: syscall.SIGINT,
	}
	if cred != nil {
		a.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: []uint32{}}
	}
	return a
}

// noBinaries is the text of ErrNoBinaries: where we looked and the package
// to install.
const noBinaries = "PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; install them with: apt-get install -y postgresql"
