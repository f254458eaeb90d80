//go:build unix

package pgserver

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSuperviseRestartsAKilledServer: a server that exits on its own (here a
// fast shutdown by signal, as an operator or the OOM killer would cause) is
// started again on the same port.
func TestSuperviseRestartsAKilledServer(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{DataDir: t.TempDir() + "/data", Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	go func() { s.Supervise(ctx); close(done) }()

	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		c, err := pgx.Connect(cctx, s.URL())
		ccancel()
		if err == nil {
			s.mu.Lock()
			newPid := s.cmd.Process.Pid
			s.mu.Unlock()
			c.Close(ctx)
			if newPid != pid {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not restarted within 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	// After ctx ends, a Stop is final.
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s.mu.Lock()
	running := s.running()
	s.mu.Unlock()
	if running {
		t.Error("server restarted after supervision ended")
	}
}
