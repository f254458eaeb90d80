package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issueRaw signs tmpl with ca through the same path as IssueServer and
// IssueClient, for certificate shapes the CLI does not offer (wrong EKU,
// CN-only server certificates as the original CA made them).
func issueRaw(t testing.TB, ca *CA, tmpl *x509.Certificate, opts IssueOptions) tls.Certificate {
	t.Helper()
	der, keyPEM, err := ca.issue(tmpl, opts)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	kp, err := parseKeyPair(certPEM(der), keyPEM)
	if err != nil {
		t.Fatalf("parseKeyPair: %v", err)
	}
	return kp
}

// TestCertificateMatrix is issue 6's matrix at the tls.Config level: each
// client certificate against a real server over loopback.
func TestCertificateMatrix(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	pool, cas := caPool(t, ca)
	srv := serverPair(t, ca)

	good, _ := clientPair(t, ca, IssueOptions{})
	otherCert, _ := clientPair(t, other, IssueOptions{})
	expired, _ := clientPair(t, ca, IssueOptions{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	future, _ := clientPair(t, ca, IssueOptions{NotBefore: time.Now().Add(24 * time.Hour)})
	serverEKU := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "eku-server"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, IssueOptions{})
	codeSigning := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "eku-code"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, IssueOptions{})
	noEKU := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}}, IssueOptions{})
	revoked, revokedPEM := clientPair(t, ca, IssueOptions{})
	if err := ca.Revoke(revokedPEM, 1); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	rev, err := NewRevocations(ca.Path(CRLDir), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		cert   *tls.Certificate
		ok     bool
		server string // substring of the server's error
	}{
		{"valid", &good, true, ""},
		{"no certificate", nil, false, "didn't provide a certificate"},
		{"other CA", &otherCert, false, "unknown authority"},
		{"expired", &expired, false, "expired"},
		{"not yet valid", &future, false, "not yet valid"},
		{"EKU serverAuth only", &serverEKU, false, "key usage"},
		{"EKU codeSigning only", &codeSigning, false, "key usage"},
		{"no EKU (original CA style)", &noEKU, true, ""},
		{"revoked", &revoked, false, "revoked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cli := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
			if tc.cert != nil {
				cli = ClientTLSConfig(*tc.cert, pool, "localhost")
			}
			r := handshake(t, ServerTLSConfig(srv, pool, rev), cli)
			if tc.ok {
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("want accepted; server %v, client %v", r.serverErr, r.clientErr)
				}
				return
			}
			if r.serverErr == nil {
				t.Fatalf("server accepted the handshake")
			}
			if r.clientErr == nil {
				t.Fatalf("client did not notice the refusal")
			}
			if !strings.Contains(r.serverErr.Error(), tc.server) {
				t.Fatalf("server error %q, want it to mention %q", r.serverErr, tc.server)
			}
		})
	}
}

// TestRevokedByCRLSignedByAnotherKey: a CRL that names the CA as issuer but
// is signed by another key must not revoke anything, and must not make a
// genuine CRL in the same directory ineffective.
func TestCRLSignedByAnotherKey(t *testing.T) {
	ca := newTestCA(t)
	pool, cas := caPool(t, ca)
	srv := serverPair(t, ca)
	victim, victimPEM := clientPair(t, ca, IssueOptions{})
	victimLeaf := victim.Leaf

	// Same subject, other key: what an attacker who can write to the CRL
	// directory but lacks the CA key could produce.
	forger, err := Init(t.TempDir(), InitOptions{CN: "Test CA", Org: "sysmon test"})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(99), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: victimLeaf.SerialNumber, RevocationTime: time.Now()}},
	}, forger.Cert, forger.key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "forged.crl"), "X509 CRL", forged)
	rev, err := NewRevocations(dir, cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.IsRevoked(victimLeaf.SerialNumber) {
		t.Fatal("a CRL signed by another key revoked a certificate")
	}
	if r := handshake(t, ServerTLSConfig(srv, pool, rev), ClientTLSConfig(victim, pool, "")); r.serverErr != nil {
		t.Fatalf("forged CRL blocked a valid certificate: %v", r.serverErr)
	}
	// Fail-closed: a directory holding only a forged CRL means no current
	// CRL for the CA.
	rev.SetFailClosed(true)
	if err := rev.Check(victimLeaf); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("fail-closed Check = %v, want ErrCRLStale", err)
	}
	rev.SetFailClosed(false)

	// The real CA's CRL beside it still works.
	if err := ca.Revoke(victimPEM, 0); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(ca.Path(CRLFile))
	if err := os.WriteFile(filepath.Join(dir, "real.pem"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rev.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := rev.Check(victimLeaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check after genuine CRL = %v, want ErrRevoked", err)
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCNOnlyServerCertificate: the original CA's server certificate has its
// host only in the CN and no extended key usage. With no server name the
// producer verifies the chain but not the host; a certificate from another
// CA is still refused.
func TestCNOnlyServerCertificate(t *testing.T) {
	ca := newTestCA(t)
	pool, _ := caPool(t, ca)
	cli, _ := clientPair(t, ca, IssueOptions{})
	cnOnly := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "consumer.example", OrganizationalUnit: []string{"server"}}}, IssueOptions{})
	if len(cnOnly.Leaf.DNSNames)+len(cnOnly.Leaf.IPAddresses) != 0 {
		t.Fatal("fixture has SANs")
	}
	if r := handshake(t, ServerTLSConfig(cnOnly, pool, nil), ClientTLSConfig(cli, pool, "")); r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("CN-only server refused without server name: server %v, client %v", r.serverErr, r.clientErr)
	}
	if r := handshake(t, ServerTLSConfig(cnOnly, pool, nil), ClientTLSConfig(cli, pool, "consumer.example")); r.clientErr == nil {
		t.Fatal("CN-only server accepted with a server name: Go must not match the CN")
	}

	other := newTestCA(t)
	otherPool, _ := caPool(t, other)
	imposter := issueRaw(t, other, &x509.Certificate{Subject: pkix.Name{CommonName: "consumer.example"}}, IssueOptions{})
	// The server trusts both CAs so that only the client's check can fail.
	both := pool.Clone()
	both.AddCert(other.Cert)
	r := handshake(t, ServerTLSConfig(imposter, both, nil), ClientTLSConfig(cli, pool, ""))
	if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "unknown authority") {
		t.Fatalf("client error %v, want unknown authority", r.clientErr)
	}
	_ = otherPool

	// A server certificate restricted to clientAuth is not a server.
	wrong := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "x"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, IssueOptions{})
	if r := handshake(t, ServerTLSConfig(wrong, pool, nil), ClientTLSConfig(cli, pool, "")); r.clientErr == nil {
		t.Fatal("client accepted a server certificate with EKU clientAuth only")
	}
	// Expired server certificate.
	old := issueRaw(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "old"}}, IssueOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if r := handshake(t, ServerTLSConfig(old, pool, nil), ClientTLSConfig(cli, pool, "")); r.clientErr == nil {
		t.Fatal("client accepted an expired server certificate")
	}
}

// TestRevokedCannotResume: a certificate revoked after its first
// connection must not get back in through TLS session resumption.
func TestRevokedCannotResume(t *testing.T) {
	ca := newTestCA(t)
	pool, cas := caPool(t, ca)
	srv := serverPair(t, ca)
	cli, cliPEM := clientPair(t, ca, IssueOptions{})
	rev, err := NewRevocations(ca.Path(CRLDir), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	scfg := ServerTLSConfig(srv, pool, rev)
	ccfg := ClientTLSConfig(cli, pool, "localhost")
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := 0; i < 2; i++ {
		r := handshake(t, scfg, ccfg)
		if r.serverErr != nil {
			t.Fatalf("connection %d: %v", i, r.serverErr)
		}
		if i == 1 && !r.resumed {
			t.Fatal("second connection did not resume; the test would prove nothing")
		}
	}
	if err := ca.Revoke(cliPEM, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := rev.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := handshake(t, scfg, ccfg); r.serverErr == nil {
		t.Fatal("revoked certificate resumed a session")
	}
}
