//go:build linux

package collect

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestMaxProcs(t *testing.T) {
	fr := newFixtureRoot(t)
	fr.load("scan/t1")
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	c, err := New(Options{ProcRoot: fr.root, MaxProcs: 5, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for i, wantEvents := range []int{0, 1, 0} { // events wait for the second sample
		clk.advance(2 * time.Second)
		s, err := c.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, e := range s.Events {
			if e.Kind == "max_procs" {
				n++
			}
		}
		// Over the limit: no per-process rows, only the count.
		if n != wantEvents || len(s.Procs) != 0 || s.ProcsSeen != 13 || s.Host == nil || s.Memory == nil {
			t.Errorf("sample %d: %d max_procs events, %d procs, %d seen", i, n, len(s.Procs), s.ProcsSeen)
		}
	}
}

// TestStatusCommandTimeout: a hung status command neither delays a sample
// nor outlives its timeout, and the status says what happened.
func TestStatusCommandTimeout(t *testing.T) {
	fr := newFixtureRoot(t)
	fr.load("scan/t1")
	c, err := New(Options{ProcRoot: fr.root, StatusCmd: "echo started; sleep 30", StatusTimeout: 300 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	start := time.Now()
	s, err := c.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("sample took %v with a hung status command", d)
	}
	if strings.Contains(s.Status.Data, "started") {
		t.Errorf("first status already has output:\n%s", s.Status.Data)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err = c.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s.Status.Data, "timed out after 300ms") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no timeout reported:\n%s", s.Status.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.Status.Data, "started\n") {
		t.Errorf("partial output lost:\n%s", s.Status.Data)
	}
	start = time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if _, err := c.Sample(ctx); err == nil {
		t.Error("Sample after Close succeeded")
	}
}

func TestSampleCanceled(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Sample(ctx); err == nil {
		t.Error("Sample with a canceled context succeeded")
	}
}

func TestNewBadRoot(t *testing.T) {
	if _, err := New(Options{ProcRoot: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a /proc") {
		t.Errorf("New on an empty dir: %v", err)
	}
}

func TestHostNameBootID(t *testing.T) {
	root := "../../testdata/proc/scan/t1"
	if h := HostName(root); h != "fixture-host" {
		t.Errorf("HostName = %q", h)
	}
	if b := BootID(root); b != "4a2f7c1e-0d1b-4c55-9a9e-5d3c2b1a0f99" {
		t.Errorf("BootID = %q", b)
	}
	if b := BootID("/proc"); len(b) != 36 {
		t.Errorf("live BootID = %q", b)
	}
}

// TestStatusCommandEndlessOutput: a command that never stops talking is
// stopped at the output cap, long before its timeout, and the cut is said.
func TestStatusCommandEndlessOutput(t *testing.T) {
	fr := newFixtureRoot(t)
	fr.load("scan/t1")
	c, err := New(Options{ProcRoot: fr.root, StatusCmd: "yes status", StatusTimeout: 20 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for {
		s, err := c.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s.Status.Data, "(output truncated at") {
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("the endless command ran %v before it was stopped", d)
			}
			if n := strings.Count(s.Status.Data, "status\n"); n < 100 {
				t.Errorf("kept only %d lines of output", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endless output never cut:\n%.300s", s.Status.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
