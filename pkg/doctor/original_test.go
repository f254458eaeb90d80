package doctor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/sink/jsonl"
	"github.com/sysmon/sysmon/pkg/transport"
)

// genOriginal builds a CA the way the original system_monitor's openssl
// scripts did (no extended key usage, host name only in the CN, client key
// and certificate in one PEM, a revoked client, a hash-linked CRL).
func genOriginal(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found; install it")
		}
		t.Skip("openssl not found")
	}
	dir := filepath.Join(t.TempDir(), "ca")
	script, err := filepath.Abs("../../testdata/pki/gen-original.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("gen-original.sh: %v\n%s", err, out)
	}
	return dir
}

// TestOriginalCALayout checks env files in the seed's shape over a CA
// made by the original's scripts: both pass, and bob's revoked certificate
// is named as refused.
func TestOriginalCALayout(t *testing.T) {
	dir := genOriginal(t)
	p := func(rel string) string { return filepath.Join(dir, rel) }
	cons := map[string]string{
		"CONSUMER_ENABLE":      "true",
		"CONSUMER_LISTEN_IP":   "127.0.0.1",
		"CONSUMER_LISTEN_PORT": fmt.Sprint(closedPort(t)),
		"CONSUMER_USE_TLS":     "true",
		"CONSUMER_CACERTFILE":  p("certs/cacert.pem"),
		"CONSUMER_CERTFILE":    p("certs/server.crt"),
		"CONSUMER_KEYFILE":     p("certs/server.key"),
		"CONSUMER_CRLDIR":      p("crl"),
		"CONSUMER_DB_URL":      pgtest.URL(t),
	}
	os.Chmod(p("certs/server.key"), 0o600)
	r := check(t, writeEnv(t, cons))
	if err := r.Err(); err != nil {
		t.Fatalf("original consumer layout: %v", err)
	}
	mustFind(t, r, doctor.Pass, "CONSUMER_CERTFILE", "no extended key usage")
	mustFind(t, r, doctor.Pass, "CONSUMER_CRLDIR", "1 revoked")

	// A consumer on the original's certificates, with its CRL.
	pair, err := pki.LoadKeyPair(p("certs/server.crt"), p("certs/server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool, cas, err := pki.LoadCAPool(p("certs/cacert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := pki.NewRevocations(p("crl"), cas, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(transport.ServerOptions{Sink: jsonl.New(io.Discard), Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, pki.ServerTLSConfig(pair, pool, rev)) }()
	defer func() { cancel(); <-done }()

	prod := func(pem string) map[string]string {
		os.Chmod(pem, 0o600)
		return map[string]string{
			"PRODUCER_ENABLE":     "true",
			"PRODUCER_IP":         "127.0.0.1",
			"PRODUCER_PORT":       fmt.Sprint(ln.Addr().(*net.TCPAddr).Port),
			"PRODUCER_USE_TLS":    "true",
			"PRODUCER_CACERTFILE": p("certs/cacert.pem"),
			"PRODUCER_CERTFILE":   pem,
			"PRODUCER_SPOOL_DIR":  t.TempDir(),
		}
	}
	r = check(t, writeEnv(t, prod(p("client_keys/alice@example.com.pem"))))
	if err := r.Err(); err != nil {
		t.Fatalf("original producer layout: %v", err)
	}
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "TLS handshake accepted")
	// bob's PEM has the certificate before the key, and bob is revoked.
	r = check(t, writeEnv(t, prod(p("client_keys/bob@example.com.pem"))))
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "key matches certificate")
	mustFind(t, r, doctor.Fail, "PRODUCER_CERTFILE", "refused this client certificate")
}
