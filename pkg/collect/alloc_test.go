//go:build linux

package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// syntheticRoot writes a /proc tree of n idle processes (plus the host files
// of the scan fixture) into a temp dir.
func syntheticRoot(tb testing.TB, n int) string {
	tb.Helper()
	fr := newFixtureRoot(tb)
	fr.load("scan/t1")
	ents, _ := os.ReadDir(fr.root)
	for _, e := range ents {
		if e.IsDir() && e.Name()[0] >= '0' && e.Name()[0] <= '9' && e.Name() != "1" {
			os.RemoveAll(filepath.Join(fr.root, e.Name()))
		}
	}
	files := map[string]string{
		"schedstat": "1000000 20000 10\n",
		"io":        "read_bytes: 0\nwrite_bytes: 0\n",
		"status":    "Name:\tidle\nUid:\t0\t0\t0\t0\n",
		"cgroup":    "0::/system.slice/idle.service\n",
		"cmdline":   "idle\x00",
		"wchan":     "hrtimer_nanosleep",
	}
	for i := range n {
		pid := 1000 + i
		d := filepath.Join(fr.root, fmt.Sprint(pid))
		if err := os.MkdirAll(filepath.Join(d, "fd"), 0o755); err != nil {
			tb.Fatal(err)
		}
		stat := fmt.Sprintf("%d (idle-%d) S 1 %d %d 0 -1 4194560 0 0 0 0 %d 1 0 0 20 0 1 0 %d 1000000 %d 0 0\n",
			pid, i%7, pid, pid, i%50, 500+i, 100+i)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			tb.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return fr.root
}

// steadyAllocs returns the allocations of one Sample over a root of n
// processes once the per-life caches are warm.
func steadyAllocs(t *testing.T, n int) float64 {
	root := syntheticRoot(t, n)
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	c, err := New(Options{ProcRoot: root, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(5, func() {
		clk.advance(time.Second)
		if _, err := c.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAllocsIndependentOfProcessCount holds the goal: a sample
// allocates O(top set), not O(processes), in steady state.
func TestAllocsIndependentOfProcessCount(t *testing.T) {
	small := steadyAllocs(t, 20)
	large := steadyAllocs(t, 300)
	t.Logf("allocations per sample: %.0f at 20 processes, %.0f at 300", small, large)
	if large > small+20 {
		t.Errorf("allocations grow with the process count: %.0f at 20, %.0f at 300", small, large)
	}
}
