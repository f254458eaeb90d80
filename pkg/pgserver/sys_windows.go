package pgserver

import (
	"errors"
	"os"
	"syscall"
)

// errPlatform is what FindBinaries, and so Start, return on Windows: the
// server is run with unix sockets, process groups, signals and a switch to
// the postgres account, none of which Windows has in that form. A consumer
// there uses a database it is given.
var errPlatform = errors.New("the private PostgreSQL needs Linux or macOS; set CONSUMER_DB_URL")

// noBinaries is the text of ErrNoBinaries, which Windows never returns.
const noBinaries = "PostgreSQL server binaries (initdb, postgres) not found"

// credential mirrors syscall.Credential, which Windows lacks; it is never
// set there since Start fails first.
type credential struct{ Uid, Gid uint32 }

func fileOwner(os.FileInfo) (int, bool) { return 0, false }

func procAttr(*credential) *syscall.SysProcAttr { return nil }

func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
