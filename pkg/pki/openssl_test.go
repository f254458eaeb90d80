package pki

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func runOpenSSL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(needOpenSSL(t), args...).CombinedOutput()
	return string(out), err
}

// TestOpenSSLAcceptsWhatCAWrites: every file sysmon ca writes verifies with
// openssl, its CRL parses and verifies, and the hash link is openssl's.
func TestOpenSSLAcceptsWhatCAWrites(t *testing.T) {
	needOpenSSL(t)
	ca := newTestCA(t)
	crt, _, err := ca.IssueServer([]string{"consumer.example", "127.0.0.1", "::1"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.IssueClient("web", "web@example.com", []string{"web1"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ca.IssueClient("old", "old@example.com", nil, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(bad, 1); err != nil {
		t.Fatal(err)
	}
	cacert := ca.Path(CACertFile)
	crl := ca.Path(CRLFile)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", cacert, crt}, ": OK"},
		{[]string{"verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", cacert, good}, ": OK"},
		{[]string{"verify", "-crl_check", "-CAfile", cacert, "-CRLfile", crl, good}, ": OK"},
		{[]string{"crl", "-in", crl, "-noout", "-CAfile", cacert}, "verify OK"},
		{[]string{"x509", "-in", cacert, "-noout", "-ext", "basicConstraints"}, "pathlen:0"},
		{[]string{"x509", "-in", good, "-noout", "-ext", "subjectAltName"}, "URI:sysmon-node:web1"},
		{[]string{"pkey", "-in", ca.Path(CAKeyFile), "-noout", "-check"}, "valid"},
	}
	for _, s := range steps {
		out, err := runOpenSSL(t, s.args...)
		if err != nil || !strings.Contains(out, s.want) {
			t.Errorf("openssl %s: err %v, want %q in:\n%s", strings.Join(s.args, " "), err, s.want, out)
		}
	}
	out, err := runOpenSSL(t, "verify", "-crl_check", "-CAfile", cacert, "-CRLfile", crl, bad)
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of revoked certificate: err %v\n%s", err, out)
	}
	out, err = runOpenSSL(t, "crl", "-in", crl, "-noout", "-hash")
	if err != nil {
		t.Fatal(err, out)
	}
	link := filepath.Join(ca.Path(CRLDir), strings.TrimSpace(out)+".r0")
	if target, err := os.Readlink(link); err != nil || target != "crl.pem" {
		t.Fatalf("link %s: %q %v", link, target, err)
	}
	// Modes: keys private, the CA key read-only.
	for path, want := range map[string]os.FileMode{
		ca.Path(CAKeyFile): 0o400, ca.Path(ServerKeyFile): 0o600, good: 0o600,
		strings.TrimSuffix(good, ".pem") + ".key": 0o600, ca.Path("private"): 0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
}

// TestNameHashMatchesOpenSSL covers openssl's canonical form: case, runs
// of spaces, leading and trailing spaces, non-ASCII, multi-valued RDNs and
// an e-mail address (IA5String).
func TestNameHashMatchesOpenSSL(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	subjects := []string{
		"/CN=Test CA/O=sysmon test",
		"/C=SE/ST=Stockholm/O=Original Org/OU=root/CN=Original Root CA/emailAddress=CA@Example.COM",
		"/CN=  Mixed   CASE\tname  /O=Ünïcödé Ørg",
		"/O=a+OU=b/CN=multi valued",
	}
	for i, subj := range subjects {
		cert := filepath.Join(dir, fmt.Sprintf("c%d.pem", i))
		out, err := runOpenSSL(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
			"-keyout", filepath.Join(dir, fmt.Sprintf("k%d.pem", i)), "-out", cert, "-days", "1",
			"-utf8", "-multivalue-rdn", "-subj", subj)
		if err != nil {
			t.Fatalf("%s: %v\n%s", subj, err, out)
		}
		want, err := runOpenSSL(t, "x509", "-in", cert, "-noout", "-subject_hash")
		if err != nil {
			t.Fatal(err, want)
		}
		data, _ := os.ReadFile(cert)
		certs, err := parseCertificates(data)
		if err != nil {
			t.Fatal(err)
		}
		h, err := NameHash(certs[0].RawSubject)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%08x", h); got != strings.TrimSpace(want) {
			t.Errorf("%q: NameHash %s, openssl %s", subj, got, strings.TrimSpace(want))
		}
	}
}
