package pki

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := Init(t.TempDir(), InitOptions{CN: "Test CA", Org: "sysmon test"})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return ca
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", p)
	return len(p), nil
}

func serverPair(t testing.TB, ca *CA, hosts ...string) tls.Certificate {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	crt, key, err := ca.IssueServer(hosts, IssueOptions{Force: true})
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	kp, err := LoadKeyPair(crt, key)
	if err != nil {
		t.Fatalf("LoadKeyPair server: %v", err)
	}
	return kp
}

func clientPair(t testing.TB, ca *CA, opts IssueOptions, nodes ...string) (tls.Certificate, string) {
	t.Helper()
	opts.Force = true
	p, err := ca.IssueClient("producer", "ops@example.com", nodes, opts)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	kp, err := LoadKeyPair(p, "")
	if err != nil {
		t.Fatalf("LoadKeyPair client: %v", err)
	}
	return kp, p
}

func caPool(t testing.TB, ca *CA) (*x509.CertPool, []*x509.Certificate) {
	t.Helper()
	pool, certs, err := LoadCAPool(ca.Path(CACertFile))
	if err != nil {
		t.Fatalf("LoadCAPool: %v", err)
	}
	return pool, certs
}

type result struct {
	serverErr, clientErr error
	peer                 *x509.Certificate // client leaf as the server saw it
	resumed              bool              // the client resumed a session
}

// handshake runs one real TLS connection over loopback and reports how
// each side fared. The client reads a byte after its handshake because in
// TLS 1.3 the server's verdict on the client certificate arrives then.
func handshake(t testing.TB, srv, cli *tls.Config) result {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		var r result
		c, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			done <- r
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := c.(*tls.Conn)
		if r.serverErr = tc.Handshake(); r.serverErr == nil {
			if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
				r.peer = pc[0]
			}
			_, _ = tc.Write([]byte{'k'})
		}
		done <- r
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cli)
	var clientErr error
	resumed := false
	if err != nil {
		clientErr = err
	} else {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		_, clientErr = c.Read(b)
		resumed = c.ConnectionState().DidResume
		c.Close()
	}
	r := <-done
	r.clientErr, r.resumed = clientErr, resumed
	return r
}

// needOpenSSL returns the openssl binary, skipping outside CI when it is
// absent and failing under CI=true, where its absence is a broken runner.
func needOpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl not found and CI=true: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
	return p
}
