package collect

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchProcs is the process count the benchmarks run at (issue 3: 2,000+).
const benchProcs = 2000

// rawStatRead is the baseline: os.ReadFile of every /proc/PID/stat, no
// parsing. It returns the number of processes read.
func rawStatRead(tb testing.TB) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if _, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			n++
		}
	}
	return n
}

func BenchmarkRawStatRead(b *testing.B) {
	spawnIdle(b, benchProcs)
	procs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		procs = rawStatRead(b)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(procs), "ns/proc")
	b.ReportMetric(float64(procs), "procs")
}

// BenchmarkScan measures a full Sample over the live /proc and, in the same
// run, the raw baseline, reporting their ratio as "x-raw" (goal: <= 2).
func BenchmarkScan(b *testing.B) {
	spawnIdle(b, benchProcs)
	c, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Sample(ctx); err != nil { // warm the per-life caches
		b.Fatal(err)
	}
	var procs uint32
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, err := c.Sample(ctx)
		if err != nil {
			b.Fatal(err)
		}
		procs = s.ProcsSeen
	}
	scan := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(procs)
	b.StopTimer()
	const rawRounds = 20
	start := time.Now()
	n := 0
	for range rawRounds {
		n = rawStatRead(b)
	}
	raw := float64(time.Since(start).Nanoseconds()) / rawRounds / float64(n)
	b.ReportMetric(scan, "ns/proc")
	b.ReportMetric(raw, "raw-ns/proc")
	b.ReportMetric(scan/raw, "x-raw")
	b.ReportMetric(float64(procs), "procs")
}
