//go:build linux

package collect

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

// maxStatusOutput bounds the status command output kept per run.
const maxStatusOutput = 16 << 10

// status composes the node status report of one sample: host name, kernel
// release, uptime, load, process counts and the latest output of the status
// command. It is part of every sample because it is small and a dashboard
// wants the latest one without looking back; the command itself runs in the
// background (see statusRunner) so it never delays a sample.
func (c *Collector) status(s *wire.Sample) *wire.NodeStatus {
	var b strings.Builder
	fmt.Fprintf(&b, "host: %s\n", c.hostname)
	fmt.Fprintf(&b, "kernel: %s\n", c.kernel)
	if c.uptimeTicks > 0 {
		fmt.Fprintf(&b, "uptime: %s\n", formatUptime(time.Duration(c.uptimeTicks)*(time.Second/clockTicks)))
	}
	if h := s.Host; h != nil {
		fmt.Fprintf(&b, "load: %.2f %.2f %.2f\n", h.Load1, h.Load5, h.Load15)
	}
	st := c.lastStats
	fmt.Fprintf(&b, "processes: %d", st.Listed-st.Vanished)
	if st.Unreadable > 0 {
		fmt.Fprintf(&b, " (%d unreadable)", st.Unreadable)
	}
	b.WriteByte('\n')
	if c.statusRun != nil {
		out, at, running := c.statusRun.latest()
		switch {
		case !at.IsZero():
			fmt.Fprintf(&b, "status command (%s):\n%s", at.UTC().Format(time.RFC3339), out)
			if !strings.HasSuffix(out, "\n") {
				b.WriteByte('\n')
			}
		case running:
			b.WriteString("status command: running\n")
		}
		c.statusRun.start()
	}
	return &wire.NodeStatus{Data: b.String()}
}

func formatUptime(d time.Duration) string {
	d = d.Truncate(time.Minute)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	return fmt.Sprintf("%dd %dh %dm", days, d/time.Hour, (d%time.Hour)/time.Minute)
}

// statusRunner runs the status command (sh -c) at most once at a time in
// the background, killing its whole process group at the timeout, and keeps
// the last output. Sample only reads the last result and asks for a new
// run, so a hung command costs one goroutine, never a stalled sample.
type statusRunner struct {
	cmd     string
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	running bool
	out     string
	at      time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	lastProblem string // guarded by mu; see problem
}

func newStatusRunner(cmd string, timeout time.Duration, log *slog.Logger) *statusRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &statusRunner{cmd: cmd, timeout: timeout, log: log, ctx: ctx, cancel: cancel}
}

func (r *statusRunner) latest() (string, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out, r.at, r.running
}

// start begins a run unless one is in flight or the runner is closed.
func (r *statusRunner) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || r.ctx.Err() != nil {
		return
	}
	r.running = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		out := r.run()
		r.mu.Lock()
		r.out, r.at, r.running = out, time.Now(), false
		r.mu.Unlock()
	}()
}

func (r *statusRunner) run() string {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", r.cmd)
	// Its own process group, so the timeout kills what the shell started
	// too; WaitDelay stops Wait from hanging on a pipe a grandchild holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var buf limitedBuffer
	buf.max = maxStatusOutput
	// A command that talks without end (`yes`) is stopped at the cap rather
	// than read and discarded until the timeout: it would cost a core.
	buf.full = cancel
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := cleanText(buf.b.Bytes())
	switch {
	case buf.truncated:
		r.problem("status command output over the limit; cut", "cmd", r.cmd, "limit_bytes", maxStatusOutput)
		return out + fmt.Sprintf("\n(output truncated at %d bytes)\n", maxStatusOutput)
	case ctx.Err() == context.DeadlineExceeded:
		r.problem("status command timed out", "cmd", r.cmd, "timeout", r.timeout)
		return out + fmt.Sprintf("\n(timed out after %s)\n", r.timeout)
	case err != nil && r.ctx.Err() != nil:
		return out // the collector is closing: not the command's failure
	case err != nil:
		r.problem("status command failed", "cmd", r.cmd, "err", err)
		return out + fmt.Sprintf("\n(%v)\n", err)
	}
	r.problem("")
	return out
}

// problem logs a status command's trouble once per change, not once per
// run (a hung command would otherwise warn every few seconds); "" marks a
// run that went well.
func (r *statusRunner) problem(msg string, args ...any) {
	r.mu.Lock()
	changed := msg != r.lastProblem
	r.lastProblem = msg
	r.mu.Unlock()
	if changed && msg != "" {
		r.log.Warn(msg, args...)
	}
}

func (r *statusRunner) close() {
	r.cancel()
	r.wg.Wait()
}

// limitedBuffer keeps the first max bytes written; on the first byte past
// them it marks itself truncated and calls full (which stops the command).
type limitedBuffer struct {
	mu        sync.Mutex
	b         bytes.Buffer
	max       int
	full      func()
	truncated bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := l.max - l.b.Len()
	if room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	if len(p) > room && !l.truncated {
		l.truncated = true
		if l.full != nil {
			l.full()
		}
	}
	return len(p), nil
}
