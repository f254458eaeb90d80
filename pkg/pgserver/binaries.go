package pgserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
)

// ErrNoBinaries reports that the PostgreSQL server binaries (initdb and
// postgres) are not installed. Test harnesses skip on it outside CI.
var ErrNoBinaries = errors.New(noBinaries)

// libDirGlob is where Debian and Ubuntu install the server binaries; they are
// not on PATH there.
var libDirGlob = "/usr/lib/postgresql/*/bin"

// FindBinaries returns the directory holding initdb and postgres: the one
// found through PATH first (with symlinks resolved, so that initdb, postgres
// and their shared files come from one installation), then the newest
// /usr/lib/postgresql/<version>/bin. The error wraps ErrNoBinaries and names
// the package to install. On Windows it fails: the private PostgreSQL runs
// on Linux and macOS only.
func FindBinaries() (binDir string, err error) {
	if errPlatform != nil {
		return "", errPlatform
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if hasServer(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(libDirGlob)
	// Newest major version first: "9.6" < "10" < "15" compares as numbers.
	sort.Slice(dirs, func(i, j int) bool {
		return versionOf(dirs[i]) > versionOf(dirs[j])
	})
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf extracts the major version from /usr/lib/postgresql/<v>/bin as a
// float ("9.6" -> 9.6, "15" -> 15); unparsable names sort last.
func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func binPath(binDir, name string) string { return filepath.Join(binDir, name) }
