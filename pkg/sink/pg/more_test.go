package pg

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/pgserver"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/wire"
)

// TestRoundTrip writes one sample with every field set to a distinct value
// (negative ones included) and reads every column back: the hand-written
// binary COPY of prc and the pgx COPY of the other tables agree with the
// schema.
func TestRoundTrip(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{})
	ctx := context.Background()
	ts := time.Now().Truncate(time.Microsecond)
	p := wire.Proc{PID: wire.OtherPID, StartTime: 987654321, Comm: "kworker/0:1", Cmdline: "a b\tc ünïcode",
		State: "D", PPID: 2, User: "nobody", App: "x.slice", CPUPct: 123.25, CPUTimeMs: 1 << 40, RSS: 3 << 30,
		DRSS: -12345, VSZ: 1 << 45, Threads: 4000000000, FDs: -1, ReadBps: 1.5, WriteBps: 2.5, RunqWaitPct: 3.5, Wchan: ""}
	b := &wire.Batch{Seq: 7, Samples: []wire.Sample{{
		Time:      ts,
		Host:      &wire.Host{Load1: 1, Load5: 2, Load15: 3, CPUUser: 4, CPUSystem: 5, CPUIOWait: 6, CPUIdle: 7, CPUSteal: 8, ProcsRunning: 9, ProcsBlocked: 10, ProcsTotal: 11, Pressure: &wire.Pressure{CPUSome: 12, MemorySome: 13, MemoryFull: 14, IOSome: 15, IOFull: 16}},
		Memory:    &wire.Memory{Total: 17, Free: 18, Available: 19, Buffers: 20, Cached: 21, SwapTotal: 22, SwapFree: 23},
		Procs:     []wire.Proc{p},
		ProcsSeen: 24,
		Apps:      []wire.AppTop{{Group: "user", Application: "root", Unit: "memory", Value: 25.5}},
		Funs:      []wire.FunTop{{Fun: "ep_poll", FunType: "wchan", NumProcesses: 26}},
		Status:    &wire.NodeStatus{Data: "status report"},
		Events:    []wire.Event{{Kind: "oom_kill", Subject: "pid 1", Detail: "killed"}},
	}}}
	write(t, s, hello("rt", "sp"), b)

	var got wire.Proc
	var gts time.Time
	var node string
	var cpuMs, rss, vsz, threads, start int64
	err := s.Pool().QueryRow(ctx, `SELECT node, ts, pid, comm, cmdline, state, ppid, username, app, cpu_pct,
		cpu_time_ms, rss, d_rss, vsz, threads, fds, read_bps, write_bps, runq_wait_pct, wchan, start_time FROM prc`).Scan(
		&node, &gts, &got.PID, &got.Comm, &got.Cmdline, &got.State, &got.PPID, &got.User, &got.App, &got.CPUPct,
		&cpuMs, &rss, &got.DRSS, &vsz, &threads, &got.FDs, &got.ReadBps, &got.WriteBps, &got.RunqWaitPct, &got.Wchan, &start)
	if err != nil {
		t.Fatal(err)
	}
	got.CPUTimeMs, got.RSS, got.VSZ, got.Threads, got.StartTime = uint64(cpuMs), uint64(rss), uint64(vsz), uint32(threads), uint64(start)
	if node != "rt" || !gts.Equal(ts) || !reflect.DeepEqual(got, p) {
		t.Fatalf("prc round trip:\n got %s %v %+v\nwant rt %v %+v", node, gts, got, ts, p)
	}

	var host [18]float64
	if err := s.Pool().QueryRow(ctx, `SELECT load1, load5, load15, cpu_user, cpu_system, cpu_iowait, cpu_idle, cpu_steal,
		procs_running, procs_blocked, procs_total, pressure_cpu_some, pressure_memory_some, pressure_memory_full,
		pressure_io_some, pressure_io_full, procs_seen, 0 FROM host`).Scan(
		&host[0], &host[1], &host[2], &host[3], &host[4], &host[5], &host[6], &host[7], &host[8], &host[9], &host[10],
		&host[11], &host[12], &host[13], &host[14], &host[15], &host[16], &host[17]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 17; i++ {
		if host[i] != float64(i+1) && !(i == 16 && host[i] == 24) {
			t.Fatalf("host column %d = %v", i, host[i])
		}
	}
	checks := map[string]int{
		"SELECT count(*) FROM memory WHERE (total, free, available, buffers, cached, swap_total, swap_free) = (17, 18, 19, 20, 21, 22, 23)": 1,
		"SELECT count(*) FROM app_top WHERE (grouping, application, unit, value) = ('user', 'root', 'memory', 25.5)":                        1,
		"SELECT count(*) FROM fun_top WHERE (fun, fun_type, num_processes) = ('ep_poll', 'wchan', 26)":                                      1,
		"SELECT count(*) FROM node_role WHERE data = 'status report'":                                                                       1,
		"SELECT count(*) FROM events WHERE (kind, subject, detail) = ('oom_kill', 'pid 1', 'killed') AND ts = (SELECT ts FROM host)":        1,
		"SELECT count(*) FROM stream WHERE node = 'rt' AND last_seq = 7":                                                                    1,
	}
	for q, want := range checks {
		if n := count(t, s, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	// A host without PSI stores NULL pressure.
	b2 := batch(8, ts.Add(time.Second), 1, 0)
	write(t, s, hello("rt", "sp"), b2)
	if n := count(t, s, "SELECT count(*) FROM host WHERE pressure_cpu_some IS NULL"); n != 1 {
		t.Fatalf("hosts without pressure = %d", n)
	}
}

// TestRejectedRowAlone makes PostgreSQL reject one row of one batch of a
// group (a CHECK constraint stands in for any row the repairs cannot
// foresee): that row is left out and recorded in events; the rest of its
// batch and the other batches of its group commit, and every batch is
// acknowledged, so no producer resends forever.
func TestRejectedRowAlone(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{Flushers: 1, FlushDelay: time.Second})
	ctx := context.Background()
	for _, q := range []string{"ALTER TABLE host ADD CONSTRAINT sane_load CHECK (load1 < 1000)",
		"ALTER TABLE prc ADD CONSTRAINT sane_rss CHECK (rss < 1e15)"} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	var dones []<-chan error
	for _, node := range []string{"good1", "bad", "good2", "good3"} {
		b := batch(1, now, 5, 2)
		if node == "bad" {
			b.Samples[3].Host.Load1 = math.Inf(1)
			b.Samples[0].Procs[1].RSS = 1 << 60
			b.Samples[4].Procs[0].RSS = 1 << 61
		}
		d, err := s.Submit(ctx, hello(node, "sp"), b)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, d)
	}
	for i, d := range dones {
		if err := <-d; err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM host"); n != 4*5-1 {
		t.Fatalf("host rows = %d, want 19", n)
	}
	if n := count(t, s, "SELECT count(*) FROM prc"); n != 4*5*2-2 {
		t.Fatalf("prc rows = %d, want 38", n)
	}
	if n := count(t, s, "SELECT count(*) FROM stream WHERE last_seq = 1"); n != 4 {
		t.Fatalf("streams advanced = %d, want 4", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE kind = $1 AND node = 'bad' AND subject = 'host' AND detail LIKE '%1 of 5 rows rejected%sane_load%'", EventRejected); n != 1 {
		t.Fatalf("sink_reject events for host = %d, want 1", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE kind = $1 AND node = 'bad' AND subject = 'prc' AND detail LIKE '%2 of 10 rows rejected%sane_rss%'", EventRejected); n != 1 {
		t.Fatalf("sink_reject events for prc = %d, want 1", n)
	}
}

// TestDatabaseRestart stops PostgreSQL under an open store: writes fail
// (nothing to acknowledge) and succeed again, exactly once, when it is back.
func TestDatabaseRestart(t *testing.T) {
	ctx := context.Background()
	pgtest.Server(t) // skip or fail as the harness does when binaries are missing
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: t.TempDir(), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := open(t, srv.URL(), Options{})
	h := hello("restart", "sp")
	now := time.Now()
	write(t, s, h, batch(1, now, 1, 3))
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.WriteBatch(wctx, h, batch(2, now.Add(time.Second), 1, 3))
	cancel()
	if err == nil {
		t.Fatal("write succeeded with the database stopped")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write hung instead of failing: %v", err)
	}
	if err := srv.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	// The producer resends 2, then 2 again (its ack was lost), then 3.
	for _, seq := range []uint64{2, 2, 3} {
		write(t, s, h, batch(seq, now.Add(time.Duration(seq)*time.Second), 1, 3))
	}
	if n := count(t, s, "SELECT count(*) FROM host"); n != 3 {
		t.Fatalf("host rows = %d, want 3", n)
	}
}
