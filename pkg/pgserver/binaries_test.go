//go:build linux

package pgserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindBinaries lays out fake installations: PATH wins, then the newest
// /usr/lib/postgresql/<v>/bin, and nothing gives ErrNoBinaries naming the
// package to install.
func TestFindBinaries(t *testing.T) {
	root := t.TempDir()
	fake := func(dir string, names ...string) string {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	oldGlob := libDirGlob
	t.Cleanup(func() { libDirGlob = oldGlob })
	libDirGlob = filepath.Join(root, "lib", "*", "bin")

	t.Setenv("PATH", fake(filepath.Join(root, "empty")))
	if _, err := FindBinaries(); !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Fatalf("no binaries: err = %v", err)
	}

	fake(filepath.Join(root, "lib", "9.6", "bin"), "initdb", "postgres")
	v15 := fake(filepath.Join(root, "lib", "15", "bin"), "initdb", "postgres")
	fake(filepath.Join(root, "lib", "10", "bin"), "initdb", "postgres")
	fake(filepath.Join(root, "lib", "16", "bin"), "initdb") // incomplete: skipped
	if got, err := FindBinaries(); err != nil || got != v15 {
		t.Fatalf("lib dirs: got %q, %v; want %s", got, err, v15)
	}

	// initdb on PATH as a symlink, as /usr/local/bin often holds them:
	// the real directory is returned.
	custom := fake(filepath.Join(root, "custom", "bin"), "initdb", "postgres")
	onPath := fake(filepath.Join(root, "path"))
	if err := os.Symlink(filepath.Join(custom, "initdb"), filepath.Join(onPath, "initdb")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", onPath)
	if got, err := FindBinaries(); err != nil || got != custom {
		t.Fatalf("PATH: got %q, %v; want %s", got, err, custom)
	}
}

// TestNoPostgresAccount checks the message a root user without the
// postgres account gets.
func TestNoPostgresAccount(t *testing.T) {
	old := accountName
	t.Cleanup(func() { accountName = old })
	accountName = "sysmon-no-such-user"
	_, err := postgresAccount()
	if err == nil || !strings.Contains(err.Error(), "useradd") || !strings.Contains(err.Error(), "refuses to run as root") {
		t.Fatalf("err = %v", err)
	}
}
