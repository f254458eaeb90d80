//go:build linux

package collect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

// fixtureRoot is a /proc stand-in whose content a test swaps between scans.
// The directory itself stays (the collector holds a descriptor to it).
type fixtureRoot struct {
	tb   testing.TB
	root string
}

func newFixtureRoot(tb testing.TB) *fixtureRoot {
	return &fixtureRoot{tb: tb, root: tb.TempDir()}
}

// load replaces the root's content with testdata/proc/<name>.
func (f *fixtureRoot) load(name string) {
	f.tb.Helper()
	ents, err := os.ReadDir(f.root)
	if err != nil {
		f.tb.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(f.root, e.Name())); err != nil {
			f.tb.Fatal(err)
		}
	}
	if err := os.CopyFS(f.root, os.DirFS(filepath.Join("..", "..", "testdata", "proc", name))); err != nil {
		f.tb.Fatalf("copy fixture %s: %v", name, err)
	}
}

// fakeClock starts at a fixed instant and moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func procByPID(tb testing.TB, s *wire.Sample, pid int32) wire.Proc {
	tb.Helper()
	for _, p := range s.Procs {
		if p.PID == pid {
			return p
		}
	}
	tb.Fatalf("pid %d not in the top set", pid)
	return wire.Proc{}
}

func hasPID(s *wire.Sample, pid int32) bool {
	for _, p := range s.Procs {
		if p.PID == pid {
			return true
		}
	}
	return false
}

func approx(tb testing.TB, what string, got, want float64) {
	tb.Helper()
	if d := got - want; d > 1e-6 || d < -1e-6 {
		tb.Errorf("%s = %v, want %v", what, got, want)
	}
}

func appValue(s *wire.Sample, group, app, unit string) (float64, bool) {
	for _, a := range s.Apps {
		if a.Group == group && a.Application == app && a.Unit == unit {
			return a.Value, true
		}
	}
	return 0, false
}

// TestFixtureScan runs two scans two seconds apart over testdata/proc/scan
// (written by testdata/proc/gen.py) and checks values worked out by hand.
func TestFixtureScan(t *testing.T) {
	fr := newFixtureRoot(t)
	fr.load("scan/t1")
	clk := &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	c, err := New(Options{ProcRoot: fr.root, Now: clk.now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	page := uint64(os.Getpagesize())

	s1, err := c.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.ProcsSeen != 12 {
		t.Errorf("first scan: ProcsSeen = %d, want 12 (13 listed, 1 unreadable)", s1.ProcsSeen)
	}
	if st := c.Stats(); st.Listed != 13 || st.Unreadable != 1 || st.Vanished != 0 {
		t.Errorf("first scan stats = %+v", st)
	}
	// First sample: rates are zero, the top set is the ten largest RSS.
	for _, p := range s1.Procs {
		if p.CPUPct != 0 || p.DRSS != 0 || p.ReadBps != 0 || p.WriteBps != 0 || p.RunqWaitPct != 0 {
			t.Errorf("first sample has a rate: %+v", p)
		}
	}
	if len(s1.Procs) != 11 {
		t.Errorf("first sample: %d rows, want 10 + other", len(s1.Procs))
	}
	if s1.Host == nil || s1.Host.Pressure != nil {
		t.Errorf("host = %+v, want present without pressure (no /proc/pressure)", s1.Host)
	}
	if len(s1.Events) != 0 {
		t.Errorf("first sample events = %+v, want none (events wait for the second sample)", s1.Events)
	}

	clk.advance(2 * time.Second)
	fr.load("scan/t2")
	s2, err := c.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Listed != 14 || st.Unreadable != 1 || st.Vanished != 1 || st.IODenied != 1 {
		t.Errorf("second scan stats = %+v, want 14 listed, 1 unreadable, 1 vanished, 1 io denied", st)
	}
	if s2.ProcsSeen != 12 {
		t.Errorf("ProcsSeen = %d, want 12", s2.ProcsSeen)
	}

	t.Run("host", func(t *testing.T) {
		h := s2.Host
		approx(t, "cpu_user", h.CPUUser, 32)
		approx(t, "cpu_system", h.CPUSystem, 12)
		approx(t, "cpu_idle", h.CPUIdle, 50)
		approx(t, "cpu_iowait", h.CPUIOWait, 4)
		approx(t, "cpu_steal", h.CPUSteal, 2)
		if h.Load1 != 1.5 || h.Load5 != 0.75 || h.Load15 != 0.25 {
			t.Errorf("load = %v %v %v", h.Load1, h.Load5, h.Load15)
		}
		if h.ProcsRunning != 3 || h.ProcsBlocked != 1 || h.ProcsTotal != 13 {
			t.Errorf("procs running/blocked/total = %d/%d/%d, want 3/1/13", h.ProcsRunning, h.ProcsBlocked, h.ProcsTotal)
		}
		if h.Pressure != nil {
			t.Errorf("pressure = %+v, want nil", h.Pressure)
		}
		want := wire.Memory{Total: 8000000 << 10, Free: 1000000 << 10, Available: 4000000 << 10,
			Buffers: 100000 << 10, Cached: 2000000 << 10, SwapTotal: 1000000 << 10, SwapFree: 900000 << 10}
		if *s2.Memory != want {
			t.Errorf("memory = %+v, want %+v", *s2.Memory, want)
		}
	})

	t.Run("hostile comm", func(t *testing.T) {
		p := procByPID(t, s2, 100)
		if p.Comm != "x) (y z" || p.Cmdline != "./x) (y z --spin" || p.State != "R" || p.PPID != 1 {
			t.Errorf("got %+v", p)
		}
		approx(t, "cpu_pct", p.CPUPct, 90)
		approx(t, "runq_wait_pct", p.RunqWaitPct, 10)
		if p.CPUTimeMs != 12800 || p.User != "nobody" || p.App != "weird.service" || p.Wchan != "" || p.FDs != 3 {
			t.Errorf("got %+v", p)
		}
		if p.RSS != 256*page || p.VSZ != 10<<20 || p.StartTime != 5000 || p.Threads != 1 {
			t.Errorf("got %+v", p)
		}
	})

	t.Run("zombie and kernel thread", func(t *testing.T) {
		// Neither is in the top set (no RSS, no rates); the roll-up holds them.
		if hasPID(s2, 200) || hasPID(s2, 2) {
			t.Error("zombie or kernel thread in the top set")
		}
		other := s2.Procs[len(s2.Procs)-1]
		if other.PID != wire.OtherPID || other.Comm != "other" || other.Cmdline != "2 other processes" {
			t.Errorf("last row = %+v, want the roll-up of 2 processes", other)
		}
		if v, ok := appValue(s2, "cgroup", "kernel", "processes"); !ok || v != 1 {
			t.Errorf("kernel processes = %v %v, want 1", v, ok)
		}
		if v, ok := appValue(s2, "cgroup", "weird.service", "processes"); !ok || v != 2 {
			t.Errorf("weird.service processes = %v %v, want 2 (the busy process and its zombie)", v, ok)
		}
		z := c.procs[200]
		if z == nil || z.state != 'Z' || z.cmdline != "" || z.wchan != "" {
			t.Errorf("zombie = %+v", z)
		}
		k := c.procs[2]
		if k == nil || !k.kthread || k.app != "kernel" || k.wchan != "kthreadd" {
			t.Errorf("kernel thread = %+v", k)
		}
	})

	t.Run("reused pid", func(t *testing.T) {
		p := procByPID(t, s2, 300)
		if p.Comm != "new-worker" || p.Cmdline != "new-worker" || p.StartTime != 9000 {
			t.Errorf("got %+v, want the new process", p)
		}
		if p.CPUPct != 0 || p.DRSS != 0 || p.ReadBps != 0 || p.RunqWaitPct != 0 {
			t.Errorf("new process inherited a rate: %+v", p)
		}
	})

	t.Run("born during the interval", func(t *testing.T) {
		p := procByPID(t, s2, 1500)
		approx(t, "cpu_pct", p.CPUPct, 30)
		approx(t, "write_bps", p.WriteBps, 5e5)
		approx(t, "runq_wait_pct", p.RunqWaitPct, 10)
		if p.DRSS != 0 || p.App != "build.service" || p.Cmdline != "cc1 -O2" {
			t.Errorf("got %+v", p)
		}
	})

	t.Run("counters backwards", func(t *testing.T) {
		p := procByPID(t, s2, 400)
		if p.CPUPct != 0 || p.ReadBps != 0 || p.WriteBps != 0 || p.RunqWaitPct != 0 {
			t.Errorf("got %+v, want all rates 0", p)
		}
		if p.User != "4242" || p.App != "session-7.scope" {
			t.Errorf("user/app = %q/%q", p.User, p.App)
		}
	})

	t.Run("cmdline", func(t *testing.T) {
		p := procByPID(t, s2, 600)
		if want := "python3 -c print('\uFFFD\uFFFD')"; p.Cmdline != want {
			t.Errorf("cmdline = %q, want %q", p.Cmdline, want)
		}
		approx(t, "read_bps", p.ReadBps, 2e6)
		approx(t, "cpu_pct", p.CPUPct, 5)
		if p.App != "docker/0123456789ab" {
			t.Errorf("cgroup v1 app = %q", p.App)
		}
		j := procByPID(t, s2, 700)
		if want := "java -Dx=" + strings.Repeat("a", wire.MaxCmdlineBytes-9); j.Cmdline != want {
			t.Errorf("long cmdline: %d bytes %q..., want %d bytes", len(j.Cmdline), j.Cmdline[:20], len(want))
		}
		if j.App != "postgresql@15-main.service" {
			t.Errorf("hybrid cgroup app = %q", j.App)
		}
	})

	t.Run("io denied and threads", func(t *testing.T) {
		p := procByPID(t, s2, 900)
		approx(t, "cpu_pct", p.CPUPct, 5)
		if p.ReadBps != 0 || p.WriteBps != 0 {
			t.Errorf("got %+v", p)
		}
		th := procByPID(t, s2, 1300)
		approx(t, "cpu_pct", th.CPUPct, 20)
		// Threads waited 0.1 s and 0.3 s of the 2 s interval.
		approx(t, "runq_wait_pct", th.RunqWaitPct, 20)
	})

	t.Run("order and roll-up", func(t *testing.T) {
		var got []int32
		for _, p := range s2.Procs {
			got = append(got, p.PID)
		}
		want := []int32{100, 1500, 1300, 600, 900, 700, 400, 1, 1400, 300, wire.OtherPID}
		if !slicesEqual(got, want) {
			t.Errorf("order = %v, want %v", got, want)
		}
	})

	t.Run("app and fun top", func(t *testing.T) {
		if v, _ := appValue(s2, "cgroup", "weird.service", "cpu"); v != 90 {
			t.Errorf("weird.service cpu = %v, want 90", v)
		}
		if v, _ := appValue(s2, "cgroup", "docker/0123456789ab", "io"); v != 2e6 {
			t.Errorf("docker io = %v, want 2e6", v)
		}
		if v, _ := appValue(s2, "user", "nobody", "memory"); v != float64(256*page) {
			t.Errorf("nobody memory = %v", v)
		}
		if v, _ := appValue(s2, "user", "root", "processes"); v != 10 {
			t.Errorf("root processes = %v, want 10", v)
		}
		want := map[wire.FunTop]bool{
			{Fun: "python3", FunType: "command", NumProcesses: 2}:   true,
			{Fun: "do_sys_poll", FunType: "wchan", NumProcesses: 8}: true,
		}
		if len(s2.Funs) != len(want) {
			t.Errorf("fun_top = %+v, want %v", s2.Funs, want)
		}
		for _, f := range s2.Funs {
			if !want[f] {
				t.Errorf("unexpected fun_top row %+v", f)
			}
		}
	})

	t.Run("events and status", func(t *testing.T) {
		kinds := map[string]wire.Event{}
		for _, e := range s2.Events {
			kinds[e.Kind] = e
		}
		if len(s2.Events) != 2 || !strings.HasPrefix(kinds["oom_kill"].Detail, "2 process(es)") ||
			kinds["suspect_rss"].Subject != "java[700]" {
			t.Errorf("events = %+v, want one oom_kill of 2 and one suspect_rss for java[700]", s2.Events)
		}
		// A third scan of the same tree: nothing crossed again.
		clk.advance(2 * time.Second)
		s3, err := c.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(s3.Events) != 0 {
			t.Errorf("third sample events = %+v, want none", s3.Events)
		}
		d := s2.Status.Data
		for _, w := range []string{"host: fixture-host\n", "kernel: 6.1.0-fixture\n", "uptime: 1d 2h 3m\n",
			"load: 1.50 0.75 0.25\n", "processes: 13 (1 unreadable)\n"} {
			if !strings.Contains(d, w) {
				t.Errorf("status lacks %q:\n%s", w, d)
			}
		}
	})
	if err := validSample(s2); err != nil {
		t.Error(err)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// validSample checks s against the wire limits the consumer enforces.
func validSample(s *wire.Sample) error {
	return wire.Validate(&wire.Batch{Seq: 1, Samples: []wire.Sample{*s}})
}
