//go:build linux

package collect

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestQuiet drives the skip-stat decision through a held descriptor of a
// regular file rewritten in place, as a held /proc file changes under it.
func TestQuiet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedstat")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil { // same inode
			t.Fatal(err)
		}
	}
	write("100 20 3\n")
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{smallBuf: make([]byte, 512), held: 1}
	p := &proc{pid: 1000, fd: fd, fdSched: true, schedExec: 100, schedWait: 20, state: 'S', cpuPct: 7, ioDenied: true}
	var st ScanStats
	gen := uint32(1) // (1000+1) % statRefresh != 0

	if !c.quiet(p, gen, &st) {
		t.Fatal("unchanged schedstat not quiet")
	}
	if p.cpuPct != 0 || st.IODenied != 1 || p.schedNow {
		t.Errorf("quiet process: cpu %v, io denied %d, schedNow %v", p.cpuPct, st.IODenied, p.schedNow)
	}

	write("150 20 4\n") // it ran
	if c.quiet(p, gen, &st) || !p.schedMoved || p.schedExec != 150 || !p.schedNow {
		t.Errorf("a process that ran was quiet: %+v", p)
	}
	p.schedNow, p.schedMoved = false, false

	if !c.quiet(p, gen, &st) {
		t.Error("unchanged again but not quiet")
	}
	p.state = 'R'
	if c.quiet(p, gen, &st) {
		t.Error("a runnable process was quiet")
	}
	p.state = 'S'
	refresh := uint32(statRefresh - 1000%statRefresh)
	if c.quiet(p, refresh, &st) {
		t.Error("quiet on its refresh turn")
	}

	write("") // the process exited: the read comes back empty
	if c.quiet(p, gen, &st) || p.fd != -1 || c.held != 0 {
		t.Errorf("exited process: quiet, or descriptor kept (fd %d, held %d)", p.fd, c.held)
	}
}
