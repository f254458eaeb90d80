package pki

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInitShapeAndForce(t *testing.T) {
	dir := t.TempDir()
	ca, err := Init(dir, InitOptions{CN: "Shape CA", Org: "Org", Curve: "P-256"})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || len(c.SubjectKeyId) != 20 {
		t.Fatalf("CA: IsCA %v MaxPathLen %d zero %v SKID %x", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.SubjectKeyId)
	}
	if c.SerialNumber.BitLen() > 128 || c.SerialNumber.Sign() <= 0 {
		t.Fatalf("serial %x", c.SerialNumber)
	}
	if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init = %v, want ErrExists", err)
	}
	if _, err := ca.IssueClient("a", "a@example.com", nil, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	ca2, err := Init(dir, InitOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if ca2.Cert.Equal(ca.Cert) {
		t.Fatal("Force did not replace the CA")
	}
	list, err := ca2.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("a new CA starts a new index: %v %v", list, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.txt.old")); err != nil {
		t.Fatal("previous index not kept:", err)
	}
	opened, err := Open(dir)
	if err != nil || !opened.Cert.Equal(ca2.Cert) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Fatal("Open of an empty directory succeeded")
	}
}

func TestIssueServerAndClient(t *testing.T) {
	ca := newTestCA(t)
	crt, key, err := ca.IssueServer([]string{"consumer.example", "10.0.0.1", "::1"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := LoadKeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	l := kp.Leaf
	if !slices.Equal(l.DNSNames, []string{"consumer.example"}) || len(l.IPAddresses) != 2 || !slices.Equal(l.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Fatalf("server leaf: %v %v %v", l.DNSNames, l.IPAddresses, l.ExtKeyUsage)
	}
	if !bytes.Equal(l.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(l.SubjectKeyId) == 0 {
		t.Fatal("key identifiers missing")
	}
	if _, _, err := ca.IssueServer([]string{"x"}, IssueOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("reissue without force = %v", err)
	}
	if _, _, err := ca.IssueServer(nil, IssueOptions{Force: true}); err == nil {
		t.Fatal("server without hosts accepted")
	}
	if _, _, err := ca.IssueServer([]string{"bad host"}, IssueOptions{Force: true}); err == nil {
		t.Fatal("host with a space accepted")
	}

	p, err := ca.IssueClient("web", "web@example.com", []string{"web1", "web 2/x", "web1"}, IssueOptions{Days: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantBase := filepath.Join(ca.Dir, ClientKeysDir, "web@example.com_"+time.Now().UTC().Format("20060102"))
	if p != wantBase+".pem" {
		t.Fatalf("client path %s", p)
	}
	data, _ := os.ReadFile(p)
	if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatal("client PEM does not start with the key, as the original's did")
	}
	for _, ext := range []string{".crt", ".key"} {
		if _, err := os.Stat(wantBase + ext); err != nil {
			t.Fatal(err)
		}
	}
	ckp, err := LoadKeyPair(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := NodesAllowed(ckp.Leaf); !slices.Equal(got, []string{"web1", "web 2/x"}) {
		t.Fatalf("nodes %q", got)
	}
	if d := ckp.Leaf.NotAfter.Sub(ckp.Leaf.NotBefore); d < 10*24*time.Hour || d > 10*24*time.Hour+time.Hour {
		t.Fatalf("validity %v", d)
	}
	if _, err := ca.IssueClient("web", "web@example.com", nil, IssueOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("reissue without force = %v", err)
	}
	for _, bad := range []struct{ name, email, node string }{
		{"", "a@b", ""}, {"n", "no-at", ""}, {"n", "../x@y", ""}, {"n", "a/b@c", ""}, {"n", "a@b", "bad\nnode"},
	} {
		var nodes []string
		if bad.node != "" {
			nodes = []string{bad.node}
		}
		if _, err := ca.IssueClient(bad.name, bad.email, nodes, IssueOptions{Force: true}); err == nil {
			t.Errorf("IssueClient(%q, %q, %q) accepted", bad.name, bad.email, bad.node)
		}
	}
}

func TestListRevokeCRLNumber(t *testing.T) {
	ca := newTestCA(t)
	if _, _, err := ca.IssueServer([]string{"localhost"}, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := ca.IssueClient("a", "a@example.com", []string{"n1"}, IssueOptions{})
	if _, err := ca.IssueClient("b", "b@example.com", nil, IssueOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	list, err := ca.List()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, e := range list {
		got = append(got, e.Kind+":"+e.Status)
	}
	if want := []string{"ca:valid", "server:valid", "client:valid", "client:expired"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if !slices.Equal(list[2].Nodes, []string{"n1"}) || !strings.Contains(list[2].Subject, "/CN=a") {
		t.Fatalf("entry %+v", list[2])
	}

	before := readCRL(t, ca)
	// Revoke by serial, colon-separated as openssl x509 -serial prints it.
	hex := SerialHex(list[1].Serial)
	var colon []string
	for i := 0; i < len(hex); i += 2 {
		colon = append(colon, hex[i:i+2])
	}
	if err := ca.Revoke(strings.ToLower(strings.Join(colon, ":")), 5); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(a, 0); err != nil {
		t.Fatal(err)
	}
	after := readCRL(t, ca)
	if after.Number.Cmp(before.Number) <= 0 {
		t.Fatalf("CRL number %v after %v", after.Number, before.Number)
	}
	if len(after.RevokedCertificateEntries) != 2 || after.RevokedCertificateEntries[0].ReasonCode != 5 {
		t.Fatalf("CRL entries %+v", after.RevokedCertificateEntries)
	}
	if err := ca.Revoke("0A0B", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown serial = %v", err)
	}
	other := newTestCA(t)
	op, _ := other.IssueClient("x", "x@example.com", nil, IssueOptions{})
	if err := ca.Revoke(op, 0); err == nil {
		t.Fatal("revoked another CA's certificate")
	}
	if err := ca.Revoke(a, 7); err == nil {
		t.Fatal("reason 7 accepted")
	}
	list, _ = ca.List()
	if list[1].Status != "revoked" || list[1].Reason != 5 || list[2].Status != "revoked" {
		t.Fatalf("after revoke: %+v", list)
	}
	if err := ca.WriteCRL(time.Hour); err != nil {
		t.Fatal(err)
	}
	if c := readCRL(t, ca); c.NextUpdate.Sub(c.ThisUpdate) > time.Hour+clockSkew+time.Second {
		t.Fatalf("next update %v", c.NextUpdate)
	}
	if err := ca.WriteCRL(0); err == nil {
		t.Fatal("zero validity accepted")
	}
}

func readCRL(t testing.TB, ca *CA) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(ca.Path(CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	crls, err := parseCRLs(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := crls[0].CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatal(err)
	}
	return crls[0]
}

func TestIndexRoundTrip(t *testing.T) {
	in := []indexRow{
		{status: 'V', notAfter: time.Date(2036, 1, 2, 3, 4, 5, 0, time.UTC), reason: -1, serial: big.NewInt(1), file: "unknown", subject: "/CN=a"},
		{status: 'R', notAfter: time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC), revokedAt: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), reason: 1, serial: new(big.Int).Lsh(big.NewInt(1), 127), file: "unknown", subject: "/CN=b/O=c"},
	}
	data := formatIndex(in)
	if !strings.Contains(string(data), "20510102030405Z") || !strings.Contains(string(data), "360102030405Z\t\t01\t") {
		t.Fatalf("format:\n%s", data)
	}
	out, err := parseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.status != b.status || !a.notAfter.Equal(b.notAfter) || !a.revokedAt.Equal(b.revokedAt) || a.reason != b.reason || a.serial.Cmp(b.serial) != 0 || a.subject != b.subject {
			t.Fatalf("row %d: %+v != %+v", i, a, b)
		}
	}
	if _, err := parseIndex([]byte("V\tbad\n")); err == nil {
		t.Fatal("malformed index accepted")
	}
}

func TestBundle(t *testing.T) {
	ca := newTestCA(t)
	p, _ := ca.IssueClient("a", "a@example.com", nil, IssueOptions{})
	tgz := filepath.Join(t.TempDir(), "a.tgz")
	if err := ca.Bundle(p, tgz); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tgz); fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode %v", fi.Mode())
	}
	f, _ := os.Open(tgz)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	caPEM, _ := os.ReadFile(ca.Path(CACertFile))
	clientPEM, _ := os.ReadFile(p)
	if !bytes.Equal(files["cacert.pem"], caPEM) || !bytes.Equal(files[filepath.Base(p)], clientPEM) || len(files) != 2 {
		t.Fatalf("bundle holds %v", slices.Collect(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		}))
	}
	if err := ca.Bundle(p, tgz); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite = %v", err)
	}
	other := newTestCA(t)
	op, _ := other.IssueClient("x", "x@example.com", nil, IssueOptions{})
	if err := ca.Bundle(op, filepath.Join(t.TempDir(), "x.tgz")); err == nil {
		t.Fatal("bundled another CA's client")
	}
}

func TestLoadKeyPairErrors(t *testing.T) {
	ca := newTestCA(t)
	a, _ := ca.IssueClient("a", "a@example.com", nil, IssueOptions{})
	b, _ := ca.IssueClient("b", "b@example.com", nil, IssueOptions{})
	aKey := strings.TrimSuffix(a, ".pem") + ".key"
	bCrt := strings.TrimSuffix(b, ".pem") + ".crt"
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.pem")
	os.WriteFile(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600)
	cases := []struct {
		cert, key, want string
	}{
		{bCrt, aKey, "does not match"},
		{bCrt, "", "no PRIVATE KEY"},
		{aKey, "", "no CERTIFICATE"},
		{bCrt, enc, "encrypted"},
		{filepath.Join(dir, "missing"), "", "no such file"},
	}
	for _, c := range cases {
		_, err := LoadKeyPair(c.cert, c.key)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadKeyPair(%s, %s) = %v, want %q", filepath.Base(c.cert), filepath.Base(c.key), err, c.want)
		}
	}
	if _, _, err := LoadCAPool(aKey); err == nil {
		t.Error("LoadCAPool of a key file succeeded")
	}
}

// TestConcurrentIssue: the directory lock keeps index.txt whole when
// several issuances race (two operators, or a script in parallel).
func TestConcurrentIssue(t *testing.T) {
	ca := newTestCA(t)
	const n = 6
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := ca.IssueClient("c", fmt.Sprintf("c%d@example.com", i), nil, IssueOptions{Curve: "P-256"})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list, err := ca.List()
	if err != nil || len(list) != n+1 {
		t.Fatalf("List: %d entries, %v", len(list), err)
	}
}
