//go:build linux

package collect

import (
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// countProcs returns the number of pid directories in /proc.
func countProcs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// spawnIdle starts idle sleep processes until /proc holds at least n
// processes, and kills exactly those pids at cleanup.
func spawnIdle(tb testing.TB, n int) {
	tb.Helper()
	need := n - countProcs(tb)
	var cmds []*exec.Cmd
	tb.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	})
	for i := 0; i < need; i++ {
		c := exec.Command("sleep", "3600")
		// Own process group: a ^C of the test does not reach them, but
		// cleanup kills each by pid.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			tb.Fatalf("spawn idle process %d of %d: %v", i, need, err)
		}
		cmds = append(cmds, c)
	}
}

// testLogger sends the collector's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
