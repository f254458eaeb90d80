package cmd

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestConsumeRunsItsOwnDatabase: with no database configured the consumer
// starts a private PostgreSQL, prints where it is, and a producer's rows are
// readable there.
func TestConsumeRunsItsOwnDatabase(t *testing.T) {
	requirePostgresBinaries(t)
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	port := freeTCPPort(t)
	dataDir := filepath.Join(dir, "pg")
	writeConsumerEnv(t, filepath.Join(dir, "consumer.env"), port, cacert, crt, key, fmt.Sprintf("CONSUMER_DATA_DIR=%q", dataDir))
	for _, kv := range os.Environ() { // "no database configured" means no PG* either
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PG") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	consumer := startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	startSysmon(t, dir, "produce", "--env", producerEnv(t, dir, port, cacert, clientPEM), "--log-format", "text")

	ready := regexp.MustCompile(`private PostgreSQL ready.* url="?([^"\s]+)`)
	var printed string
	deadline := time.Now().Add(90 * time.Second)
	for printed == "" {
		if m := ready.FindStringSubmatch(consumer.out.String()); m != nil {
			printed = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the consumer never said where its database is:\n%s", consumer.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(consumer.out.String(), "system_monitor_password") {
		t.Error("the private database uses the well-known default password")
	}
	pw, err := os.ReadFile(dataDir + ".password")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dataDir + ".password"); st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v", st.Mode().Perm())
	}
	u, err := url.Parse(printed)
	if err != nil {
		t.Fatalf("printed URL %q: %v", printed, err)
	}
	u.User = url.UserPassword(u.User.Username(), strings.TrimSpace(string(pw)))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to the printed URL: %v", err)
	}
	defer conn.Close(ctx)
	node, _ := os.Hostname()
	waitRows(t, conn, 60*time.Second, "samples in the private database", `SELECT count(*) FROM host WHERE node = $1 HAVING count(*) >= 2`, node)
}

func requirePostgresBinaries(t *testing.T) {
	t.Helper()
	for _, p := range append([]string{"/usr/local/bin/initdb"}, globOr("/usr/lib/postgresql/*/bin/initdb")...) {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	if _, err := lookPath("initdb"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("PostgreSQL server binaries are required under CI (apt-get install -y postgresql)")
	}
	t.Skip("no PostgreSQL server binaries")
}

func globOr(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

var lookPath = exec.LookPath
