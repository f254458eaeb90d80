package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/pgserver"
)

var (
	once     sync.Once
	srv      *pgserver.Server
	dataDir  string
	startErr error
	dbSeq    atomic.Int64
)

func start() {
	dir, err := os.MkdirTemp("", "sysmon-pgtest-")
	if err != nil {
		startErr = fmt.Errorf("pgtest: temp dir: %w", err)
		return
	}
	dataDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, startErr = pgserver.Start(ctx, pgserver.Options{DataDir: dir + "/data", Ephemeral: true})
	if startErr != nil {
		os.RemoveAll(dir)
	}
}

// Server returns the shared cluster, starting it on first use; tests that
// stop and restart the database (chaos tests) use it. It skips or fails t as
// URL does when the cluster cannot start.
func Server(t testing.TB) *pgserver.Server {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		if errors.Is(startErr, pgserver.ErrNoBinaries) && os.Getenv("CI") != "true" {
			t.Skipf("pgtest: %v", startErr)
		}
		t.Fatalf("pgtest: %v", startErr)
	}
	return srv
}

// URL returns the URL of a new, empty database on the shared cluster, owned
// by the application role (postgres://system_monitor:...@127.0.0.1:port/db).
// Databases are dropped with the cluster when Main returns.
func URL(t testing.TB) string {
	t.Helper()
	s := Server(t)
	name := fmt.Sprintf("test_%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := s.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Main runs the tests, then stops the shared cluster (if a test started it)
// and removes its directory, and exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	if dataDir != "" {
		os.RemoveAll(dataDir)
	}
	os.Exit(code)
}
