package pki

import (
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

const originalFixture = "../../testdata/pki/original"

// genOriginal runs testdata/pki/gen-original.sh, the original CA's openssl
// procedure, into a fresh directory.
func genOriginal(t testing.TB) string {
	t.Helper()
	needOpenSSL(t)
	dir := filepath.Join(t.TempDir(), "ca")
	script, err := filepath.Abs("../../testdata/pki/gen-original.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gen-original.sh: %v\n%s", err, out)
	}
	return dir
}

// checkOriginalLayout runs the producer/consumer checks against a CA
// directory made by the original's openssl scripts.
func checkOriginalLayout(t *testing.T, dir string) {
	pool, cas, err := LoadCAPool(filepath.Join(dir, "certs/cacert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := LoadKeyPair(filepath.Join(dir, "certs/server.crt"), filepath.Join(dir, "certs/server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Leaf.DNSNames) != 0 || srv.Leaf.Subject.CommonName != "localhost" {
		t.Fatalf("fixture server certificate: SANs %v CN %q", srv.Leaf.DNSNames, srv.Leaf.Subject.CommonName)
	}
	rev, err := NewRevocations(filepath.Join(dir, "crl"), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	scfg := ServerTLSConfig(srv, pool, rev)

	for _, f := range []string{"alice@example.com.pem", "alice-sec1.pem"} {
		cli, err := LoadKeyPair(filepath.Join(dir, "client_keys", f), "")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if NodesAllowed(cli.Leaf) != nil {
			t.Fatalf("%s: original certificates carry no node binding", f)
		}
		if r := handshake(t, scfg, ClientTLSConfig(cli, pool, "")); r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("%s: server %v, client %v", f, r.serverErr, r.clientErr)
		}
	}
	// bob's PEM has the certificate first; he is revoked in crl/rootca.crl.
	bob, err := LoadKeyPair(filepath.Join(dir, "client_keys/bob@example.com.pem"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.Check(bob.Leaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("bob: Check = %v, want ErrRevoked", err)
	}
	if r := handshake(t, scfg, ClientTLSConfig(bob, pool, "")); r.serverErr == nil {
		t.Fatal("revoked bob was accepted")
	}

	// The <hash>.r0 link is named with openssl's hash of the CA name.
	h, err := NameHash(cas[0].RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "crl", fmt.Sprintf("%08x.r0", h))); err != nil {
		t.Fatalf("NameHash %08x does not name the link openssl made: %v", h, err)
	}

	// A directory holding only a DER <hash>.r0 (c_rehash of a DER CRL).
	data, err := os.ReadFile(filepath.Join(dir, "crl/rootca.crl"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, fmt.Sprintf("%08x.r0", h)), b.Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	rev2, err := NewRevocations(only, cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rev2.IsRevoked(bob.Leaf.SerialNumber) {
		t.Fatal("DER <hash>.r0 CRL not loaded")
	}
}

// TestOriginalFixture uses the checked-in run of gen-original.sh.
func TestOriginalFixture(t *testing.T) {
	checkOriginalLayout(t, originalFixture)
}

// TestOriginalGenerated runs the original's openssl procedure afresh, then
// takes the directory over with sysmon: list, revoke, new CRL.
func TestOriginalGenerated(t *testing.T) {
	dir := genOriginal(t)
	checkOriginalLayout(t, dir)

	// The CA key was written 0400 by the script; Open needs only to read it.
	ca, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ca.List()
	if err != nil {
		t.Fatal(err)
	}
	var kinds, states []string
	for _, e := range list {
		kinds = append(kinds, e.Kind)
		states = append(states, e.Status)
	}
	if !slices.Equal(kinds, []string{"ca", "server", "client", "client"}) || !slices.Equal(states, []string{"valid", "valid", "valid", "revoked"}) {
		t.Fatalf("List kinds %v states %v", kinds, states)
	}
	if list[3].Reason != 1 {
		t.Fatalf("bob's reason %d, want 1 (keyCompromise)", list[3].Reason)
	}
	alice := filepath.Join(dir, "client_keys/alice@example.com.pem")
	if err := ca.Revoke(alice, 4); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(alice, 4); !errors.Is(err, ErrAlreadyRevoked) {
		t.Fatalf("second Revoke = %v, want ErrAlreadyRevoked", err)
	}
	openssl := needOpenSSL(t)
	out, err := exec.Command(openssl, "verify", "-crl_check", "-CAfile", filepath.Join(dir, "certs/cacert.pem"),
		"-CRLfile", filepath.Join(dir, CRLFile), filepath.Join(dir, "client_keys/alice@example.com.crt")).CombinedOutput()
	if err == nil {
		t.Fatalf("openssl verify accepted alice after sysmon revoked her:\n%s", out)
	}
	if !containsAll(string(out), "certificate revoked") {
		t.Fatalf("openssl verify: %s", out)
	}
	// openssl still reads the index that sysmon rewrote.
	cmd := exec.Command(openssl, "ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl/rootca.crl")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl ca -gencrl on sysmon's index: %v\n%s", err, out)
	}
	_, cas, _ := LoadCAPool(filepath.Join(dir, CACertFile))
	rev, err := NewRevocations(filepath.Join(dir, "crl"), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rev.IsRevoked(list[2].Serial) || !rev.IsRevoked(list[3].Serial) || rev.IsRevoked(list[1].Serial) {
		t.Fatal("openssl's CRL from sysmon's index does not list exactly alice and bob")
	}
}
