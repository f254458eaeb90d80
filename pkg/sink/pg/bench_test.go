package pg

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/wire"
)

// Shape of the benchmark load: producers sending batches of samples of 30
// processes, as issue 7's load test does; one benchmark op is opRows rows.
const (
	benchProcs     = 30
	benchSamples   = 10
	benchProducers = 32
	benchBatches   = 512 // batches per op, benchBatches/benchProducers per producer
	opRows         = benchBatches * benchSamples * benchProcs
	copyRows       = opRows / 16 // rows per baseline COPY: 19200, near a flush group
)

func benchProc(j int) wire.Proc {
	return wire.Proc{PID: int32(1000 + j), StartTime: uint64(123456 + j), Comm: "postgres",
		Cmdline: "postgres: system_monitor system_monitor 127.0.0.1(43210) idle", State: "S", PPID: 1,
		User: "postgres", App: "postgresql@15-main.service", CPUPct: 12.5, CPUTimeMs: 98765, RSS: 123 << 20,
		DRSS: -4096, VSZ: 456 << 20, Threads: 1, FDs: 12, ReadBps: 4096, WriteBps: 8192, RunqWaitPct: 0.5,
		Wchan: "ep_poll"}
}

func benchBatch(seq uint64, t0 time.Time) *wire.Batch {
	b := &wire.Batch{Seq: seq}
	for i := 0; i < benchSamples; i++ {
		s := wire.Sample{Time: t0.Add(time.Duration(i) * time.Second)}
		for j := 0; j < benchProcs; j++ {
			s.Procs = append(s.Procs, benchProc(j))
		}
		b.Samples = append(b.Samples, s)
	}
	return b
}

// baseline holds ready prc rows, shaped as the ingest benchmark's (same
// nodes, same sample times), for a straight CopyFrom.
type baseline struct {
	pool *pgxpool.Pool
	rows [][]any
}

func newBaseline(b *testing.B) *baseline {
	s := open(b, pgtest.URL(b), Options{})
	now := time.Now()
	bl := &baseline{pool: s.Pool()}
	for k := 0; len(bl.rows) < copyRows; k++ {
		node := fmt.Sprintf("bench-%02d", k%benchProducers)
		ts := now.Add(time.Duration(k) * time.Second)
		for j := 0; j < benchProcs; j++ {
			p := benchProc(j)
			bl.rows = append(bl.rows, []any{node, ts, p.PID, p.Comm, p.Cmdline, p.State, p.PPID, p.User, p.App,
				p.CPUPct, int64(p.CPUTimeMs), int64(p.RSS), p.DRSS, int64(p.VSZ), int64(p.Threads), p.FDs,
				p.ReadBps, p.WriteBps, p.RunqWaitPct, p.Wchan, int64(p.StartTime)})
		}
	}
	return bl
}

// op copies opRows rows in COPYs of copyRows, one commit each.
func (bl *baseline) op(b *testing.B) {
	for i := 0; i < opRows/copyRows; i++ {
		if _, err := bl.pool.CopyFrom(context.Background(), pgx.Identifier{"prc"}, prcColumns, pgx.CopyFromRows(bl.rows)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyBaseline is pgx CopyFrom of ready prc rows straight into the
// partitioned table: the ceiling BenchmarkIngest is measured against.
func BenchmarkCopyBaseline(b *testing.B) {
	bl := newBaseline(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		bl.op(b)
	}
	b.ReportMetric(float64(b.N*opRows)/time.Since(start).Seconds(), "rows/s")
	checkRows(b, bl.pool, b.N*opRows)
}

// ingest is benchProducers producers, each with its stream and its
// pre-encoded batches (the producer's work is not the consumer's).
type ingest struct {
	s      *Store
	hellos []*wire.Hello
	frames [][][]byte
	sent   int
}

func newIngest(b *testing.B, ops int) *ingest {
	o := Options{Flushers: envInt("BENCH_FLUSHERS", 0)}
	in := &ingest{s: open(b, pgtest.URL(b), o)}
	now := time.Now()
	in.frames = make([][][]byte, benchProducers)
	for p := range in.frames {
		h := hello(fmt.Sprintf("bench-%02d", p), "spool")
		if _, err := in.s.OpenStream(context.Background(), h); err != nil {
			b.Fatal(err)
		}
		in.hellos = append(in.hellos, h)
		for seq := uint64(1); seq <= uint64(ops*benchBatches/benchProducers); seq++ {
			buf, err := wire.Binary.Append(nil, benchBatch(seq, now.Add(time.Duration(seq)*benchSamples*time.Second)))
			if err != nil {
				b.Fatal(err)
			}
			in.frames[p] = append(in.frames[p], buf)
		}
	}
	return in
}

// benchWindow is how many batches a producer's connection keeps in flight
// (submitted, not yet acknowledged), as a pipelining transport does;
// BENCH_WINDOW=1 measures a connection that waits for each commit.
var benchWindow = envInt("BENCH_WINDOW", 4)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// op sends the next benchBatches batches, benchBatches/benchProducers from
// every producer at once, each through decode -> Submit (group, dedupe,
// COPY, commit) -> the acknowledgement, in order, up to benchWindow in
// flight per producer.
func (in *ingest) op(b *testing.B) {
	per := benchBatches / benchProducers
	var wg sync.WaitGroup
	errs := make(chan error, benchProducers)
	for p := range in.frames {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			var inflight []<-chan error
			for _, f := range in.frames[p][in.sent : in.sent+per] {
				m, err := wire.Binary.Decode(f)
				if err != nil {
					errs <- err
					return
				}
				if len(inflight) == benchWindow {
					if err := <-inflight[0]; err != nil {
						errs <- err
						return
					}
					inflight = inflight[1:]
				}
				done, err := in.s.Submit(context.Background(), in.hellos[p], m.(*wire.Batch))
				if err != nil {
					errs <- err
					return
				}
				inflight = append(inflight, done)
			}
			for _, done := range inflight {
				if err := <-done; err != nil {
					errs <- err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	in.sent += per
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkIngest measures the consumer's path on the same rows, and the
// baseline again in the same run, interleaved op by op on the same server so
// that load from other processes weighs on both alike. It reports rows/s,
// baseline_rows/s and their ratio (goal: pct_of_baseline >= 70).
func BenchmarkIngest(b *testing.B) {
	bl := newBaseline(b)
	in := newIngest(b, b.N)
	b.ResetTimer()
	var tIngest, tBase time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		in.op(b)
		t1 := time.Now()
		bl.op(b)
		tIngest += t1.Sub(t0)
		tBase += time.Since(t1)
	}
	rows := float64(b.N * opRows)
	b.ReportMetric(rows/tIngest.Seconds(), "rows/s")
	b.ReportMetric(rows/tBase.Seconds(), "baseline_rows/s")
	b.ReportMetric(100*tBase.Seconds()/tIngest.Seconds(), "pct_of_baseline")
	checkRows(b, in.s.Pool(), b.N*opRows)
}

func checkRows(b *testing.B, pool *pgxpool.Pool, want int) {
	b.StopTimer()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM prc").Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != want {
		b.Fatalf("prc has %d rows, want %d", n, want)
	}
}
