package spool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// failSegments makes writes and syncs of segment files fail with err while
// on is set; the state file keeps working, as in-place overwrites do on a
// full disk.
func failSegments(s *spoolT, err error) *atomic.Bool {
	var on atomic.Bool
	write, sync := s.writeAt, s.syncFile
	isSeg := func(f *os.File) bool {
		return strings.HasSuffix(f.Name(), ".seg") || strings.HasSuffix(f.Name(), ".tmp")
	}
	s.mu.Lock()
	s.writeAt = func(f *os.File, b []byte, off int64) error {
		if on.Load() && isSeg(f) {
			// A full disk takes part of the write first.
			write(f, b[:len(b)/2], off)
			return err
		}
		return write(f, b, off)
	}
	s.syncFile = func(f *os.File) error {
		if on.Load() && isSeg(f) {
			return err
		}
		return sync(f)
	}
	s.mu.Unlock()
	return &on
}

func TestDiskFullKeepsBatchesInMemory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{MemoryFallback: 3})
	s.add(5)
	s.add(5)
	full := failSegments(s, fmt.Errorf("write: %w", syscall.ENOSPC))
	full.Store(true)
	for range 5 {
		s.add(5) // no error: the batch is held in memory
		s.clock.Add(2 * time.Second)
	}
	st := s.Stats()
	if st.MemoryRecords != 3 || st.MemoryDropped != 2 || !strings.Contains(st.DiskError, "no space left") || st.Records != 5 {
		t.Fatalf("stats while full: %+v", st)
	}
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 5 6 7]" {
		t.Fatalf("pending while full = %v", got)
	}
	if got := seqs(s.pending(5)); fmt.Sprint(got) != "[6 7]" {
		t.Fatalf("pending after 5 while full = %v", got)
	}
	if n := s.log.count("spool disk unwritable"); n != 1 {
		t.Fatalf("%d 'unwritable' lines, want one per state change", n)
	}
	if n := s.log.count("memory fallback full"); n != 1 {
		t.Fatalf("%d 'memory fallback full' lines", n)
	}
	for _, f := range segFiles(t, dir) {
		if _, bad, _, err := readFile(f); err != nil || len(bad) != 0 {
			t.Fatalf("failed writes left damage in %s: %v %v", f, bad, err)
		}
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}

	full.Store(false)
	s.add(5)
	if n := s.log.count("spool disk writable again"); n != 1 {
		t.Fatalf("%d 'writable again' lines", n)
	}
	st = s.Stats()
	if st.MemoryRecords != 0 || st.DiskError != "" || st.Records != 4 {
		t.Fatalf("stats after recovery: %+v", st)
	}
	s.Close()

	s = openT(t, dir, DiskOptions{})
	recs := s.pending(0)
	if got := seqs(recs); fmt.Sprint(got) != "[5 6 7 8]" {
		t.Fatalf("on disk after recovery = %v", got)
	}
	drops := shedEvents(t, recs[:1])[ShedSubjectBatch]
	want := fmt.Sprintf("dropped 2 batches from %s to %s (disk unwritable, memory fallback full)", stamp(t0), stamp(t0.Add(2*time.Second)))
	if len(drops) != 1 || drops[0].Detail != want {
		t.Fatalf("drop event in the oldest remaining batch: %+v, want %q", drops, want)
	}
}

// TestDiskSyncFailureCutsTheWrite: a failed fdatasync (EIO) leaves the
// record's fate unknown, so it is cut off, kept in memory and written to a
// fresh segment later.
func TestDiskSyncFailureCutsTheWrite(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	s.add(1)
	var fail atomic.Bool
	sync := s.syncFile
	s.syncFile = func(f *os.File) error {
		if fail.Load() && strings.HasSuffix(f.Name(), ".seg") {
			return syscall.EIO
		}
		return sync(f)
	}
	fail.Store(true)
	s.add(1)
	fail.Store(false)
	s.add(1)
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("pending = %v", got)
	}
	s.Close()
	s = openT(t, dir, DiskOptions{})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("after restart = %v", got)
	}
	if strings.Contains(s.log.String(), "damaged") {
		t.Fatalf("failed write left damage:\n%s", s.log.String())
	}
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments, want the first and a fresh one after the failure", n)
	}
}

func readFile(path string) ([]entry, []damage, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, err
	}
	return readSegment(data)
}

// TestDiskFullTmpfs fills a real 64 KiB tmpfs: ENOSPC from the kernel, the
// memory fallback, and the write-out once acknowledgements free space.
func TestDiskFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (needs root): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "spool")
	s := openT(t, dir, DiskOptions{MemoryFallback: 100})
	var firstMem uint64
	for range 200 {
		seq := s.add(10)
		if st := s.Stats(); st.MemoryRecords > 0 {
			firstMem = seq
			break
		}
	}
	if firstMem == 0 {
		t.Fatal("the 64 KiB tmpfs never filled")
	}
	st := s.Stats()
	if !strings.Contains(st.DiskError, "no space left") {
		t.Fatalf("disk error %q", st.DiskError)
	}
	t.Logf("tmpfs full at seq %d: %+v", firstMem, st)
	for range 5 {
		s.add(10)
	}
	last := s.LastSeq()
	if got := seqs(s.pending(0)); len(got) != int(last) || got[len(got)-1] != last {
		t.Fatalf("pending while full: %d records, want %d", len(got), last)
	}
	// The consumer acknowledges what reached the disk: segments go, space frees.
	if err := s.Ack(firstMem - 1); err != nil {
		t.Fatal(err)
	}
	s.add(10)
	if st := s.Stats(); st.MemoryRecords != 0 || st.DiskError != "" {
		t.Fatalf("after space was freed: %+v", st)
	}
	if s.log.count("spool disk unwritable") != 1 || s.log.count("spool disk writable again") != 1 {
		t.Fatal("state changes not logged once each")
	}
	s.Close()
	s = openT(t, dir, DiskOptions{})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != fmt.Sprint(span(firstMem, last+1)) {
		t.Fatalf("on disk after recovery = %v, want %d..%d", got, firstMem, last+1)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
