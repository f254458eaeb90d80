//go:build linux

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
// run, the raw baseline, reporting their ratio as "x-raw" (goal: <= 2). The
// baseline runs interleaved with the samples, outside the timer, so that
// load from elsewhere on the machine weighs on both alike.
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
	var raw time.Duration
	rawProcs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		start := time.Now()
		rawProcs += rawStatRead(b)
		raw += time.Since(start)
		b.StartTimer()
		s, err := c.Sample(ctx)
		if err != nil {
			b.Fatal(err)
		}
		procs = s.ProcsSeen
	}
	scanNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(procs)
	rawNs := float64(raw.Nanoseconds()) / float64(rawProcs)
	b.ReportMetric(scanNs, "ns/proc")
	b.ReportMetric(rawNs, "raw-ns/proc")
	b.ReportMetric(scanNs/rawNs, "x-raw")
	b.ReportMetric(float64(procs), "procs")
}
