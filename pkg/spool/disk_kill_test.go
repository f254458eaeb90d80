package spool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestMain lets the test binary act as a producer that appends until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SPOOL_TEST_APPENDER"); dir != "" {
		os.Exit(runAppender(dir))
	}
	os.Exit(m.Run())
}

// runAppender appends batches to the spool in dir forever, printing each
// seq once Append has returned (the moment a producer may send it).
func runAppender(dir string) int {
	d, err := OpenDisk(dir, DiskOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		seq := d.LastSeq() + 1
		if err := d.Append(seq, testPayload(nopTB{}, seq, time.Now(), 30)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stdout, seq)
		if seq%7 == 0 {
			d.Ack(seq - 5)
		}
	}
}

type nopTB struct{ testing.TB }

func (nopTB) Helper()           {}
func (nopTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// TestDiskSurvivesKill9: a producer killed mid-append loses nothing it had
// been told was appended, and its lock does not outlive it.
func TestDiskSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var appended uint64
	for round := range 3 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_TEST_APPENDER="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		target := appended + 40 + uint64(round)*13
		for sc.Scan() {
			n, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("appender said %q", sc.Text())
			}
			if n <= appended {
				t.Fatalf("appender reused seq %d after %d", n, appended)
			}
			appended = n
			if n >= target {
				break
			}
		}
		cmd.Process.Kill() // SIGKILL, possibly in the middle of a write
		cmd.Wait()
		t.Logf("round %d: killed after seq %d", round, appended)
	}
	s := openT(t, dir, DiskOptions{})
	if s.LastSeq() < appended {
		t.Fatalf("LastSeq %d, but %d was appended", s.LastSeq(), appended)
	}
	recs := s.pending(0)
	if len(recs) == 0 || recs[len(recs)-1].Seq < appended {
		t.Fatalf("pending ends at %v, want at least %d", seqs(recs)[len(recs)-1:], appended)
	}
	for i, r := range recs {
		if b := decodeBatch(t, r.Payload); b.Seq != r.Seq || len(b.Samples[0].Procs) != 30 {
			t.Fatalf("record %d damaged", r.Seq)
		}
		if i > 0 && r.Seq != recs[i-1].Seq+1 {
			t.Fatalf("gap between %d and %d", recs[i-1].Seq, r.Seq)
		}
	}
}
