//go:build linux

package collect

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hidepidResult is what the unprivileged collect helper reports.
type hidepidResult struct {
	Seen  uint32
	Stats ScanStats
	Err   string
}

// collectHelper samples SYSMON_COLLECT_ROOT twice and prints the outcome
// as JSON; it runs as an unprivileged user under TestHidepid.
func collectHelper() int {
	var r hidepidResult
	c, err := New(Options{ProcRoot: os.Getenv("SYSMON_COLLECT_ROOT")})
	if err == nil {
		ctx := context.Background()
		_, err = c.Sample(ctx)
		if err == nil {
			time.Sleep(100 * time.Millisecond)
			smp, err2 := c.Sample(ctx)
			err = err2
			if smp != nil {
				r.Seen = smp.ProcsSeen
			}
		}
		r.Stats = c.Stats()
		c.Close()
	}
	if err != nil {
		r.Err = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// TestHidepid mounts a private proc instance with each hidepid mode and runs
// the collector in it as the "nobody" user: what it may not read is counted,
// never fatal.
func TestHidepid(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestHidepid needs root to mount proc and drop privileges")
		}
		t.Skip("needs root to mount proc")
	}
	// The unprivileged helper must be able to reach its binary.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "collect-helper")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	total := countProcs(t)

	run := func(t *testing.T, opts string) hidepidResult {
		mnt := filepath.Join(dir, "proc-"+opts)
		if err := os.Mkdir(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("proc", mnt, "proc", 0, opts); err != nil {
			t.Fatalf("mount proc -o %s: %v", opts, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
		cmd := exec.Command(bin)
		cmd.Env = []string{"SYSMON_COLLECT_HELPER=collect", "SYSMON_COLLECT_ROOT=" + mnt}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper: %v %s", err, out)
		}
		var r hidepidResult
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("helper output %q: %v", out, err)
		}
		t.Logf("%s: %+v (about %d processes on the host)", opts, r, total)
		if r.Err != "" {
			t.Fatalf("collector failed: %s", r.Err)
		}
		return r
	}

	t.Run("default", func(t *testing.T) {
		// Everything listed and stat readable, but other users' io is not.
		r := run(t, "hidepid=0")
		if r.Stats.Unreadable != 0 || r.Stats.IODenied == 0 || r.Seen < uint32(total/2) {
			t.Errorf("got %+v, want all readable, some io denied", r)
		}
	})
	t.Run("noaccess", func(t *testing.T) {
		// hidepid=1: directories listed, their files refused.
		r := run(t, "hidepid=1")
		if r.Stats.Unreadable == 0 || r.Seen == 0 || r.Seen > 10 {
			t.Errorf("got %+v, want most unreadable and counted, own processes seen", r)
		}
	})
	t.Run("invisible", func(t *testing.T) {
		// hidepid=2: other users' processes are not even listed.
		r := run(t, "hidepid=2")
		if r.Stats.Listed > 10 || r.Seen == 0 {
			t.Errorf("got %+v, want only own processes", r)
		}
	})
}
