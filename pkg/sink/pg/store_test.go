package pg

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func open(t testing.TB, url string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func hello(node, spool string) *wire.Hello {
	return &wire.Hello{Node: node, AgentVersion: "test", BootID: "boot", SpoolID: spool}
}

// batch makes a batch of n samples one second apart from t0, each with
// procs processes, host, memory, an app_top, a fun_top and a status row.
func batch(seq uint64, t0 time.Time, n, procs int) *wire.Batch {
	b := &wire.Batch{Seq: seq}
	for i := 0; i < n; i++ {
		s := wire.Sample{
			Time:      t0.Add(time.Duration(i) * time.Second),
			Host:      &wire.Host{Load1: 1, CPUIdle: 90, ProcsTotal: 100},
			Memory:    &wire.Memory{Total: 8 << 30, Free: 1 << 30},
			ProcsSeen: 100,
			Apps:      []wire.AppTop{{Group: "cgroup", Application: "a.service", Unit: "cpu", Value: 5}},
			Funs:      []wire.FunTop{{Fun: "bash", FunType: "command", NumProcesses: 3}},
			Status:    &wire.NodeStatus{Data: "up"},
		}
		for j := 0; j < procs; j++ {
			s.Procs = append(s.Procs, wire.Proc{PID: int32(1000 + j), StartTime: uint64(j), Comm: "proc", Cmdline: "/bin/proc --flag",
				State: "S", PPID: 1, User: "root", App: "a.service", CPUPct: 1.5, CPUTimeMs: 1000, RSS: 1 << 20,
				VSZ: 1 << 24, Threads: 2, FDs: 5, Wchan: "do_wait"})
		}
		b.Samples = append(b.Samples, s)
	}
	return b
}

func count(t testing.TB, s *Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func write(t testing.TB, s *Store, h *wire.Hello, b *wire.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WriteBatch(ctx, h, b); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateConcurrent opens the same empty database from two stores at
// once, then a third time: each migration is applied once, and reopening
// applies nothing.
func TestMigrateConcurrent(t *testing.T) {
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url, Options{Logger: testLogger(t)})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := open(t, url, Options{})
	ms, _ := migrations()
	if got := count(t, s, "SELECT count(*) FROM schema_migrations"); got != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", got, len(ms))
	}
	n, err := migrate(context.Background(), s.pool)
	if err != nil || n != 0 {
		t.Fatalf("re-migrate applied %d, err %v", n, err)
	}
}

func partitionDays(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	parts, err := s.existingPartitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for table, days := range parts {
		for d := range days {
			out[table] = append(out[table], d.suffix())
		}
	}
	return out
}

// TestPartitions creates the window's partitions at Open, then moves the
// clock 20 days on: Maintain creates the new window and drops every older
// partition, whatever the gap.
func TestPartitions(t *testing.T) {
	url := pgtest.URL(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := open(t, url, Options{RetentionDays: 3, DaysAhead: 2, Now: clock})
	for _, table := range partitioned {
		for _, d := range []string{"20260307", "20260308", "20260309", "20260310", "20260311", "20260312"} {
			if n := count(t, s, "SELECT count(*) FROM pg_class WHERE relname = $1", table+"_"+d); n != 1 {
				t.Fatalf("partition %s_%s missing", table, d)
			}
		}
		if n := count(t, s, "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1", table); n != 6 {
			t.Fatalf("%s has %d partitions, want 6", table, n)
		}
	}
	mu.Lock()
	now = now.Add(20 * 24 * time.Hour)
	mu.Unlock()
	if err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := partitionDays(t, s)
	for _, table := range partitioned {
		days := got[table]
		if len(days) != 6 {
			t.Fatalf("%s partitions after 20 days: %v", table, days)
		}
		for _, d := range days {
			if d < "20260327" || d > "20260401" {
				t.Fatalf("%s keeps partition %s outside 20260327..20260401", table, d)
			}
		}
	}
	// Rows land in today's partition.
	write(t, s, hello("n1", "sp"), batch(1, now, 2, 3))
	if n := count(t, s, "SELECT count(*) FROM prc_20260330"); n != 6 {
		t.Fatalf("prc_20260330 has %d rows, want 6", n)
	}
}

// TestReplaySkipped writes a batch, then the same batch again (as a
// reconnecting producer replays its spool), also through a second store:
// its rows exist once, and OpenStream reports the committed sequence.
func TestReplaySkipped(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url, Options{})
	s2 := open(t, url, Options{})
	ctx := context.Background()
	h := hello("node-a", "spool-1")
	if seq, err := s.OpenStream(ctx, h); err != nil || seq != 0 {
		t.Fatalf("OpenStream = %d, %v", seq, err)
	}
	now := time.Now()
	b1, b2 := batch(1, now, 3, 5), batch(2, now.Add(3*time.Second), 3, 5)
	write(t, s, h, b1)
	write(t, s, h, b1)
	write(t, s2, h, b1) // s2 never opened the stream
	write(t, s, h, b2)
	write(t, s2, h, b1)
	write(t, s2, h, b2)
	if n := count(t, s, "SELECT count(*) FROM host WHERE node = 'node-a'"); n != 6 {
		t.Fatalf("host rows = %d, want 6", n)
	}
	if n := count(t, s, "SELECT count(*) FROM prc"); n != 30 {
		t.Fatalf("prc rows = %d, want 30", n)
	}
	if n := count(t, s, "SELECT count(DISTINCT ts) FROM host"); n != 6 {
		t.Fatalf("distinct host ts = %d, want 6", n)
	}
	for _, st := range []*Store{s, s2} {
		if seq, err := st.OpenStream(ctx, h); err != nil || seq != 2 {
			t.Fatalf("OpenStream after 2 batches = %d, %v", seq, err)
		}
	}
	if st := s.Stats(); st.Batches+s2.Stats().Batches != 2 || st.Skipped+s2.Stats().Skipped != 4 || st.Rows+s2.Stats().Rows != 2*(3*(5+5)) {
		t.Fatalf("stats %+v + %+v: want 2 batches, 4 skipped, 60 rows", st, s2.Stats())
	}
	// Another spool of the same node is another stream.
	write(t, s, hello("node-a", "spool-2"), batch(1, now.Add(time.Minute), 1, 1))
	if n := count(t, s, "SELECT count(*) FROM host"); n != 7 {
		t.Fatalf("host rows = %d, want 7", n)
	}
	if n := count(t, s, "SELECT count(*) FROM node"); n != 1 {
		t.Fatalf("node rows = %d, want 1", n)
	}
}

// TestTimePolicy writes a producer whose clock is 3 days fast, one 400 days
// fast and a 15-day-old replay, with 10 days of retention and again with 30:
// nothing fails; in-window times are kept, with partitions made on demand;
// the others are stored at receive time with a clock_skew event.
func TestTimePolicy(t *testing.T) {
	now := time.Now().UTC()
	t.Run("retention10", func(t *testing.T) {
		s := open(t, pgtest.URL(t), Options{RetentionDays: 10, DaysAhead: 10})
		h := hello("skew", "sp")
		write(t, s, h, batch(1, now.Add(3*24*time.Hour), 2, 2))
		write(t, s, h, batch(2, now.Add(400*24*time.Hour), 2, 2))
		write(t, s, h, batch(3, now.Add(-15*24*time.Hour), 2, 2))
		if n := count(t, s, "SELECT count(*) FROM host"); n != 6 {
			t.Fatalf("host rows = %d, want 6", n)
		}
		if n := count(t, s, "SELECT count(*) FROM host WHERE ts > now() + interval '2 days'"); n != 2 {
			t.Fatalf("fast-clock rows kept = %d, want 2", n)
		}
		if n := count(t, s, "SELECT count(*) FROM host WHERE ts BETWEEN now() - interval '1 hour' AND now() + interval '1 hour'"); n != 4 {
			t.Fatalf("rows moved to receive time = %d, want 4", n)
		}
		if n := count(t, s, "SELECT count(*) FROM events WHERE kind = $1", EventClockSkew); n != 2 {
			t.Fatalf("clock_skew events = %d, want 2", n)
		}
	})
	t.Run("retention30", func(t *testing.T) {
		s := open(t, pgtest.URL(t), Options{RetentionDays: 30, DaysAhead: -1})
		h := hello("replay", "sp")
		old := now.Add(-15 * 24 * time.Hour)
		// Drop the old day's partitions first: the replay must create
		// them on demand.
		name := "host_" + dayOf(old).suffix()
		for _, tb := range partitioned {
			if _, err := s.Pool().Exec(context.Background(), "DROP TABLE "+tb+"_"+dayOf(old).suffix()); err != nil {
				t.Fatal(err)
			}
		}
		write(t, s, h, batch(1, old, 2, 2))
		write(t, s, h, batch(2, now.Add(30*time.Hour), 2, 2)) // no days ahead: one day of slack
		if n := count(t, s, "SELECT count(*) FROM "+name); n != 2 {
			t.Fatalf("%s rows = %d, want 2", name, n)
		}
		if n := count(t, s, "SELECT count(*) FROM events"); n != 1 {
			t.Fatalf("events = %d, want 1 (clock_skew of the +30h batch)", n)
		}
	})
}

// TestRepair sends values PostgreSQL would reject: a NUL byte, invalid
// UTF-8, a uint64 above bigint. The batch lands, repaired, with events rows.
func TestRepair(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{})
	b := batch(1, time.Now(), 1, 2)
	b.Samples[0].Procs[0].Cmdline = "evil\x00arg"
	b.Samples[0].Procs[0].Comm = "bad\xffutf"
	b.Samples[0].Procs[1].RSS = math.MaxUint64
	b.Samples[0].Memory.Total = math.MaxUint64
	b.Samples[0].Status.Data = "nul\x00here"
	write(t, s, hello("rep\x00air", "sp"), b)
	var cmd, comm string
	if err := s.Pool().QueryRow(context.Background(), "SELECT cmdline, comm FROM prc WHERE pid = 1000").Scan(&cmd, &comm); err != nil {
		t.Fatal(err)
	}
	if cmd != "evilarg" || comm != "bad\uFFFDutf" {
		t.Fatalf("repaired cmdline %q comm %q", cmd, comm)
	}
	if n := count(t, s, "SELECT count(*) FROM prc WHERE rss = $1", int64(math.MaxInt64)); n != 1 {
		t.Fatalf("clamped rss rows = %d", n)
	}
	if n := count(t, s, "SELECT count(*) FROM host WHERE node = 'repair'"); n != 1 {
		t.Fatalf("host rows for repaired node = %d", n)
	}
	if b.Samples[0].Procs[0].Cmdline != "evil\x00arg" {
		t.Fatal("WriteBatch changed the caller's batch")
	}
	rows, err := s.Pool().Query(context.Background(), "SELECT subject, detail FROM events WHERE kind = $1 ORDER BY subject", EventRepaired)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var sub, det string
		rows.Scan(&sub, &det)
		got = append(got, sub+": "+det)
	}
	want := []string{"memory.total", "node.node", "node_role.data", "prc.cmdline", "prc.comm", "prc.rss"}
	if len(got) != len(want) {
		t.Fatalf("repair events %q, want subjects %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+": ") {
			t.Fatalf("repair events %q, want subjects %q", got, want)
		}
	}
}

// TestConcurrentWriters has 40 streams written at once through two stores
// (two consumers sharing one database), every batch sent twice: each
// batch's rows exist exactly once.
func TestConcurrentWriters(t *testing.T) {
	url := pgtest.URL(t)
	concurrentWriters(t, []*Store{open(t, url, Options{}), open(t, url, Options{Flushers: 1})})
}

// TestRouterOnlyWrites runs the same with the statements the store uses on
// Citus (every stream row locked and advanced by its own single-shard
// statement), one store in each mode: the modes lock in the same order
// and dedupe alike.
func TestRouterOnlyWrites(t *testing.T) {
	url := pgtest.URL(t)
	router := open(t, url, Options{})
	router.routerOnly = true // before any batch: the flushers read it after a channel receive
	concurrentWriters(t, []*Store{router, open(t, url, Options{Flushers: 1})})
}

func concurrentWriters(t *testing.T, stores []*Store) {
	const streams, batches, samples, procs = 40, 10, 2, 5
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := hello(fmt.Sprintf("node-%02d", i%20), fmt.Sprintf("spool-%d", i))
			for seq := uint64(1); seq <= batches; seq++ {
				b := batch(seq, now.Add(time.Duration(seq)*time.Minute), samples, procs)
				for k := 0; k < 2; k++ {
					if err := stores[(i+k+int(seq))%2].WriteBatch(context.Background(), h, b); err != nil {
						errs <- err
						return
					}
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := stores[0]
	if n := count(t, s, "SELECT count(*) FROM host"); n != streams*batches*samples {
		t.Fatalf("host rows = %d, want %d", n, streams*batches*samples)
	}
	if n := count(t, s, "SELECT count(*) FROM prc"); n != streams*batches*samples*procs {
		t.Fatalf("prc rows = %d, want %d", n, streams*batches*samples*procs)
	}
	if n := count(t, s, "SELECT count(*) FROM stream WHERE last_seq = $1", batches); n != streams {
		t.Fatalf("streams at last seq = %d, want %d", n, streams)
	}
	if n := count(t, s, "SELECT count(*) FROM node"); n != 20 {
		t.Fatalf("nodes = %d, want 20", n)
	}
	var _ pgx.Rows
}
