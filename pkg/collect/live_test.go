//go:build linux

package collect

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysmon/sysmon/pkg/wire"
)

// The test binary doubles as the helper processes of the live tests: run
// with SYSMON_COLLECT_HELPER set it becomes a busy loop, a memory holder or
// a writer instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("SYSMON_COLLECT_HELPER") {
	case "":
		os.Exit(m.Run())
	case "hold":
		// 120 MiB made resident at once. Mapped outside the Go heap so
		// that a -race build's shadow memory does not inflate the RSS.
		b, err := unix.Mmap(-1, 0, 120<<20, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			os.Exit(3)
		}
		fmt.Println("ready")
		time.Sleep(time.Hour)
		_ = b[len(b)-1]
	case "collect":
		os.Exit(collectHelper())
	case "write":
		f, err := os.CreateTemp(os.Getenv("SYSMON_COLLECT_DIR"), "w")
		if err != nil {
			os.Exit(3)
		}
		buf := make([]byte, 1<<20)
		for {
			// Rewrite the same 8 MiB: each write dirties pages, which
			// is what write_bytes counts.
			for range 8 {
				if _, err := f.Write(buf); err != nil {
					os.Exit(3)
				}
			}
			_ = f.Sync()
			_, _ = f.Seek(0, io.SeekStart)
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.Exit(2)
}

// startHelper runs the test binary, copied to dir/name when name is set
// (comm is the executable's file name), in the given helper mode.
func startHelper(t *testing.T, mode, name string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := self
	if name != "" {
		path = filepath.Join(t.TempDir(), name)
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), append([]string{"SYSMON_COLLECT_HELPER=" + mode}, extraEnv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func runHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// TestLive samples the real /proc with helper processes running: a busy
// loop under a hostile name, a 120 MiB holder over a lowered suspect limit,
// a writer, and a sleep.
func TestLive(t *testing.T) {
	// The busy loop is a shell's, under a copy of the shell named with
	// spaces and parentheses: comm is the executable's file name. One
	// thread, so that its CPU and run-queue wait add up to the interval.
	const spinName = "x) (y z"
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	shData, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	spinPath := filepath.Join(t.TempDir(), spinName)
	if err := os.WriteFile(spinPath, shData, 0o755); err != nil {
		t.Fatal(err)
	}
	spin := exec.Command(spinPath, "-c", "while :; do :; done")
	runHelper(t, spin)

	hold := startHelper(t, "hold", "")
	out, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	runHelper(t, hold)
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("memory holder: %q %v", line, err)
	}

	writer := startHelper(t, "write", "sysmon-writer", "SYSMON_COLLECT_DIR="+t.TempDir())
	runHelper(t, writer)

	sleep := exec.Command("sleep", "30")
	runHelper(t, sleep)

	c, err := New(Options{SuspectRSS: 100 << 20, StatusCmd: "echo status-ok", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var samples []*wire.Sample
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		s, err := c.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := validSample(s); err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		samples = append(samples, s)
	}
	s := samples[len(samples)-1]

	sp := procByPID(t, s, int32(spin.Process.Pid))
	// On an idle machine cpu_pct is near 100; on a loaded one (tests of
	// other packages in parallel) the loop waits on the run queue for
	// the rest, so the sum is the robust check.
	if sum := sp.CPUPct + sp.RunqWaitPct; sp.Comm != spinName || sp.CPUPct < 10 || sum < 60 || sum > 140 || sp.Threads != 1 {
		t.Errorf("busy loop: comm %q cpu %.1f%% + runq wait %.1f%%, want %q adding up to about 100%%",
			sp.Comm, sp.CPUPct, sp.RunqWaitPct, spinName)
	}
	if want := spinPath + " -c while :; do :; done"; sp.Cmdline != want {
		t.Errorf("busy loop cmdline = %q, want %q", sp.Cmdline, want)
	}
	if sp.User != "root" && os.Getuid() == 0 {
		t.Errorf("busy loop user = %q", sp.User)
	}

	t.Logf("busy loop: %+v", sp)
	hp := procByPID(t, s, int32(hold.Process.Pid))
	if hp.RSS < 120<<20 || hp.RSS > 160<<20 {
		t.Errorf("holder rss = %d, want about 120 MiB", hp.RSS)
	}
	t.Logf("holder: %+v", hp)
	var suspect int
	for _, smp := range samples {
		for _, e := range smp.Events {
			if e.Kind == "suspect_rss" && strings.HasSuffix(e.Subject, fmt.Sprintf("[%d]", hold.Process.Pid)) {
				suspect++
			}
		}
	}
	if suspect != 1 {
		t.Errorf("%d suspect_rss events for the holder over %d samples, want 1", suspect, len(samples))
	}

	wp := procByPID(t, s, int32(writer.Process.Pid))
	t.Logf("writer: %+v", wp)
	if wp.WriteBps <= 0 || wp.Comm != "sysmon-writer" {
		t.Errorf("writer: %+v, want write_bps > 0", wp)
	}
	if wp.FDs < 3 {
		t.Errorf("writer fds = %d", wp.FDs)
	}

	// The sleep is idle: not in the top set, but tracked.
	sl := c.procs[int32(sleep.Process.Pid)]
	if sl == nil || sl.comm != "sleep" || sl.state != 'S' || sl.ppid != int32(os.Getpid()) || sl.wchan == "" {
		t.Errorf("sleep = %+v", sl)
	}

	units := map[string]bool{}
	for _, a := range s.Apps {
		units[a.Group+"/"+a.Unit] = true
	}
	for _, u := range []string{"cgroup/cpu", "cgroup/memory", "cgroup/processes", "user/cpu", "user/memory", "user/processes", "cgroup/io"} {
		if !units[u] {
			t.Errorf("app_top lacks %s rows", u)
		}
	}
	types := map[string]bool{}
	for _, f := range s.Funs {
		types[f.FunType] = true
	}
	if !types["command"] || !types["wchan"] {
		t.Errorf("fun_top = %+v, want command and wchan rows", s.Funs)
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	if !strings.Contains(s.Status.Data, "kernel: "+release+"\n") || !strings.Contains(s.Status.Data, "status-ok") {
		t.Errorf("status does not name kernel %s or lack the command output:\n%s", release, s.Status.Data)
	}

	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kb uint64
	fmt.Sscanf(strings.SplitN(string(mi), "\n", 2)[0], "MemTotal: %d kB", &kb)
	if s.Memory == nil || s.Memory.Total != kb<<10 {
		t.Errorf("memory total = %+v, want %d", s.Memory, kb<<10)
	}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil && s.Host.Pressure == nil {
		t.Error("kernel has PSI but the sample has none")
	}
	if s.Host.CPUIdle+s.Host.CPUUser+s.Host.CPUSystem+s.Host.CPUIOWait+s.Host.CPUSteal < 99 {
		t.Errorf("host cpu modes do not add up: %+v", s.Host)
	}
	if other := s.Procs[len(s.Procs)-1]; other.PID != wire.OtherPID {
		t.Errorf("last row is not the roll-up: %+v", other)
	}
}

// TestHeldStatDescriptors: stat descriptors are held for live processes and
// released when a process exits; the count never drifts.
func TestHeldStatDescriptors(t *testing.T) {
	c, err := New(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.procfs || c.maxHeld == 0 {
		t.Fatalf("/proc not detected as procfs (procfs %v, maxHeld %d)", c.procfs, c.maxHeld)
	}
	check := func(when string) {
		t.Helper()
		n := 0
		for _, p := range c.procs {
			if p.fd >= 0 {
				n++
			}
		}
		if n != c.held {
			t.Errorf("%s: %d descriptors held, counter says %d", when, n, c.held)
		}
	}
	sleep := exec.Command("sleep", "30")
	runHelper(t, sleep)
	ctx := context.Background()
	if _, err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	pid := int32(sleep.Process.Pid)
	p := c.procs[pid]
	if p == nil || p.fd < 0 || !p.fdSched {
		t.Fatalf("sleep %d: schedstat not held: %+v", pid, p)
	}
	check("after first scan")
	_ = sleep.Process.Kill()
	_ = sleep.Wait()
	if _, err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	if c.procs[pid] != nil {
		t.Errorf("exited process %d still tracked", pid)
	}
	check("after exit")
	c.Close()
	if c.held != 0 {
		t.Errorf("%d descriptors held after Close", c.held)
	}
}

// TestLiveBorn: a process started between two samples is charged the CPU it
// used since birth, not zero.
func TestLiveBorn(t *testing.T) {
	c, err := New(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	// Burn CPU for a while, then sleep, so the process is alive but idle
	// at the second sample.
	burn := exec.Command("sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exec sleep 30")
	runHelper(t, burn)
	time.Sleep(1500 * time.Millisecond)
	if _, err := c.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	p := c.procs[int32(burn.Process.Pid)]
	if p == nil {
		t.Fatal("process started between the samples not seen")
	}
	t.Logf("born process: comm %s cpu %.1f%% ticks %d", p.comm, p.cpuPct, p.ticks)
	if p.ticks == 0 || p.cpuPct <= 0 {
		t.Errorf("born process charged %.1f%% for %d ticks, want its CPU since birth", p.cpuPct, p.ticks)
	}
}
