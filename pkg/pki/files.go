package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is returned when a file would be overwritten without Force.
var ErrExists = errors.New("already exists")

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that a crash never leaves a half-written key or
// certificate and readers (a consumer watching crl/) see either the old or
// the new file. Without force an existing path is an error wrapping
// ErrExists.
func writeFileAtomic(path string, data []byte, mode fs.FileMode, force bool) error {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	// CreateTemp makes 0600; set the final mode before any data is written so
	// a key is never readable by others, not even for an instant.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", name, path, err)
	}
	return nil
}

// checkFree returns an ErrExists error for the first path that exists, so
// that an issuance writing several files either writes all or none.
func checkFree(force bool, paths ...string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w", p, ErrExists)
		}
	}
	return nil
}

// lockDir takes an exclusive advisory lock on dir/.lock so that two sysmon
// ca commands cannot interleave their updates of index.txt and crlnumber.
// The returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open CA lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock CA directory %s: %w", dir, err)
	}
	return func() {
		_ = unlockFile(f)
		f.Close()
	}, nil
}

// ErrInvalid marks errors in what the caller asked for (a bad name, e-mail
// address, host, serial, reason or validity), as opposed to failures of the
// file system or of cryptography; match it with errors.Is.
var ErrInvalid = errors.New("invalid input")

type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return invalidError{fmt.Sprintf(format, args...)}
}
