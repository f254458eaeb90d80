package doctor_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
)

func consumerEnv(t *testing.T, f *fixture, dbURL string, over map[string]string) map[string]string {
	t.Helper()
	kv := map[string]string{
		"CONSUMER_ENABLE":      "true",
		"CONSUMER_LISTEN_IP":   "127.0.0.1",
		"CONSUMER_LISTEN_PORT": fmt.Sprint(closedPort(t)),
		"CONSUMER_USE_TLS":     "true",
		"CONSUMER_CACERTFILE":  f.cacert(),
		"CONSUMER_CERTFILE":    f.server,
		"CONSUMER_KEYFILE":     f.key,
		"CONSUMER_CRLDIR":      f.ca.Path(pki.CRLDir),
		"CONSUMER_DB_URL":      dbURL,
	}
	for k, v := range over {
		if v == "-" {
			delete(kv, k)
			continue
		}
		kv[k] = v
	}
	return kv
}

func TestConsumerGood(t *testing.T) {
	f := newFixture(t)
	db := pgtest.URL(t)
	r := check(t, writeEnv(t, consumerEnv(t, f, db, nil)))
	if err := r.Err(); err != nil {
		t.Fatalf("good consumer file: %v", err)
	}
	mustFind(t, r, doctor.Pass, "CONSUMER_CERTFILE", "serverAuth")
	mustFind(t, r, doctor.Pass, "CONSUMER_CERTFILE", "chains to the CA")
	mustFind(t, r, doctor.Pass, "CONSUMER_CRLDIR", "CRLs parse and verify")
	mustFind(t, r, doctor.Pass, "CONSUMER_LISTEN_PORT", "free to listen on")
	mustFind(t, r, doctor.Pass, "CONSUMER_DB_URL", "reachable as")
	mustFind(t, r, doctor.Pass, "CONSUMER_DB_URL", "may create tables")
}

func TestConsumerBroken(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	db := pgtest.URL(t)

	// A database whose role lost the right to create tables.
	noCreate := pgtest.URL(t)
	revokeCreate(t, noCreate)
	wrongPassword := withPassword(t, db, "not-the-password")
	missingDB := withDatabase(t, db, "no_such_db")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)

	garbageCRL := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbageCRL, "broken.crl"), []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherCRL := other.ca.Path(pki.CRLDir) // signed by a CA the consumer does not trust

	clientAsServer := pemJoin(t, f.client)
	worldReadableKey := filepath.Join(t.TempDir(), "server.key")
	data, err := os.ReadFile(f.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(worldReadableKey, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Certificates expiring soon and expired.
	soonDir := newFixture(t)
	if _, _, err := soonDir.ca.IssueServer([]string{"127.0.0.1"}, pki.IssueOptions{Force: true, Curve: "P-256", NotAfter: time.Now().Add(5 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		db     string
		over   map[string]string
		status doctor.Status
		key    string
		msg    string
	}{
		{"typo", db, map[string]string{"CONSUMER_LISTEN_PROT": "8443"}, doctor.Fail, "CONSUMER_LISTEN_PROT", "did you mean CONSUMER_LISTEN_PORT?"},
		{"disabled", db, map[string]string{"CONSUMER_ENABLE": "false"}, doctor.Fail, "CONSUMER_ENABLE", "disabled"},
		{"bad ip", db, map[string]string{"CONSUMER_LISTEN_IP": "everywhere"}, doctor.Fail, "CONSUMER_LISTEN_IP", "not an IP address"},
		{"foreign ip", db, map[string]string{"CONSUMER_LISTEN_IP": "192.0.2.1"}, doctor.Fail, "CONSUMER_LISTEN_IP", "not an address of this host"},
		{"port in use", db, map[string]string{"CONSUMER_LISTEN_PORT": busyPort}, doctor.Warn, "CONSUMER_LISTEN_PORT", "in use"},
		{"missing key", db, map[string]string{"CONSUMER_KEYFILE": "missing.key"}, doctor.Fail, "CONSUMER_KEYFILE", "cannot read missing.key"},
		{"key of another cert", db, map[string]string{"CONSUMER_KEYFILE": other.key}, doctor.Fail, "CONSUMER_CERTFILE", "does not match"},
		{"cert of another CA", db, map[string]string{"CONSUMER_CERTFILE": other.server, "CONSUMER_KEYFILE": other.key}, doctor.Fail, "CONSUMER_CERTFILE", "does not chain"},
		{"client cert as server", db, map[string]string{"CONSUMER_CERTFILE": clientAsServer, "CONSUMER_KEYFILE": clientAsServer}, doctor.Fail, "CONSUMER_CERTFILE", "lacks serverAuth"},
		{"key readable by all", db, map[string]string{"CONSUMER_KEYFILE": worldReadableKey}, doctor.Warn, "CONSUMER_KEYFILE", "readable by others"},
		{"expires soon", db, map[string]string{"CONSUMER_CACERTFILE": soonDir.cacert(), "CONSUMER_CERTFILE": soonDir.server, "CONSUMER_KEYFILE": soonDir.key, "CONSUMER_CRLDIR": soonDir.ca.Path(pki.CRLDir)}, doctor.Warn, "CONSUMER_CERTFILE", "expires in 4 days"},
		{"crl dir missing", db, map[string]string{"CONSUMER_CRLDIR": "/nonexistent/crl"}, doctor.Fail, "CONSUMER_CRLDIR", "not a readable directory"},
		{"crl garbage", db, map[string]string{"CONSUMER_CRLDIR": garbageCRL}, doctor.Warn, "CONSUMER_CRLDIR", "does not parse"},
		{"crl garbage fail-closed", db, map[string]string{"CONSUMER_CRLDIR": garbageCRL, "CONSUMER_CRL_FAIL_CLOSED": "true"}, doctor.Fail, "CONSUMER_CRLDIR", "does not parse"},
		{"crl of another CA", db, map[string]string{"CONSUMER_CRLDIR": otherCRL}, doctor.Warn, "CONSUMER_CRLDIR", "does not verify"},
		{"crl off", db, map[string]string{"CONSUMER_CRLDIR": ""}, doctor.Warn, "CONSUMER_CRLDIR", "still accepted"},
		{"bad db url", "mysql://x", nil, doctor.Fail, "CONSUMER_DB_URL", "not a PostgreSQL URL"},
		{"db down", fmt.Sprintf("postgres://u:p@127.0.0.1:%d/db?sslmode=disable", closedPort(t)), nil, doctor.Fail, "CONSUMER_DB_URL", "cannot connect"},
		{"db wrong password", wrongPassword, nil, doctor.Fail, "CONSUMER_DB_URL", "password authentication failed"},
		{"db missing", missingDB, nil, doctor.Fail, "CONSUMER_DB_URL", "does not exist"},
		{"db no create", noCreate, nil, doctor.Fail, "CONSUMER_DB_URL", "may not create tables"},
		{"metrics busy", db, map[string]string{"CONSUMER_METRICS_ADDR": "127.0.0.1:" + busyPort}, doctor.Warn, "CONSUMER_METRICS_ADDR", "cannot listen"},
		{"plain", db, map[string]string{"CONSUMER_USE_TLS": "false"}, doctor.Warn, "CONSUMER_USE_TLS", "unauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check(t, writeEnv(t, consumerEnv(t, f, tc.db, tc.over)))
			x := mustFind(t, r, tc.status, tc.key, tc.msg)
			if tc.status == doctor.Fail && r.Err() == nil {
				t.Error("a failed check but Err is nil")
			}
			if tc.status == doctor.Warn && r.Count(doctor.Fail) > 0 {
				t.Errorf("only a warning expected, got failures (%s)", x)
			}
		})
	}
}

func revokeCreate(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The application role owns the database, and through
	// pg_database_owner the public schema: it may revoke its own right.
	for _, q := range []string{
		"REVOKE CREATE ON SCHEMA public FROM pg_database_owner",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func withPassword(t *testing.T, raw, pw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

func withDatabase(t *testing.T, raw, db string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}
