package pki

import (
	"crypto"
	"os"
	"path/filepath"
	"testing"
)

// seedFiles adds every PEM/CRL file under testdata/pki as a corpus seed.
func seedFiles(f *testing.F, add func(data []byte)) {
	f.Helper()
	err := filepath.WalkDir("../../testdata/pki", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".pem", ".crt", ".key", ".crl", ".r0":
			if data, err := os.ReadFile(p); err == nil {
				add(data)
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

// FuzzParseKeyPair: the loader of producer key files never panics, and
// what it accepts is a consistent key pair.
func FuzzParseKeyPair(f *testing.F) {
	seedFiles(f, func(b []byte) { f.Add(b, []byte(nil)) })
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		if key == nil {
			key = cert
		}
		kp, err := parseKeyPair(cert, key)
		if err != nil {
			return
		}
		if kp.Leaf == nil || kp.PrivateKey == nil || !publicKeysEqual(kp.PrivateKey.(crypto.Signer).Public(), kp.Leaf.PublicKey) {
			t.Fatal("accepted an inconsistent key pair")
		}
		_ = NodesAllowed(kp.Leaf)
	})
}

// FuzzParseCRLsAndNames: CRL files and CA bundles from a CRL directory or
// config never panic the parsers or the name hash.
func FuzzParseCRLsAndNames(f *testing.F) {
	seedFiles(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		if crls, err := parseCRLs(data); err == nil {
			for _, c := range crls {
				_, _ = NameHash(c.RawIssuer)
			}
		}
		if certs, err := parseCertificates(data); err == nil {
			for _, c := range certs {
				_, _ = NameHash(c.RawSubject)
				_ = onelineName(c.RawSubject)
				_ = certKind(c)
			}
		}
		_, _ = NameHash(data)
		_ = onelineName(data)
		_, _ = parseIndex(data)
	})
}
