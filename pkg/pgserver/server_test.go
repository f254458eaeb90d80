//go:build unix

package pgserver

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") != "true" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

func query1(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != DefaultUser {
		t.Fatalf("current_user = %q", user)
	}
}

// TestLifecycle starts a cluster, restarts it on the same port, and starts
// a second Server on the same, already initialised, data directory.
func TestLifecycle(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	dir := t.TempDir() + "/data"
	s, err := Start(ctx, Options{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url := s.URL()
	query1(t, url)

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if c, err := pgx.Connect(cctx, url); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	cancel()
	if err := s.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("URL changed over restart: %s -> %s", url, s.URL())
	}
	query1(t, url)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Second start on the initialised directory: no initdb, same role.
	s2, err := Start(ctx, Options{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	query1(t, s2.URL())
	u2, err := s2.CreateDatabase(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	query1(t, u2)
}

// TestWrongPassword checks that TCP connections need the password.
func TestWrongPassword(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	s, err := Start(ctx, Options{DataDir: t.TempDir(), Ephemeral: true, Password: "sekret", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bad := "postgres://system_monitor:wrong@127.0.0.1:" + itoa(s.Port()) + "/system_monitor?sslmode=disable"
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Fatal("connected with a wrong password")
	}
	query1(t, s.URL())
}

func itoa(i int) string { return strconv.Itoa(i) }
