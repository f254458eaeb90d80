package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// pemBlocks splits data into its PEM blocks. Text around and between blocks
// (openssl -text output, comments) is ignored, as openssl does.
func pemBlocks(data []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, b)
	}
}

// parseCertificates returns every certificate in data: all CERTIFICATE
// blocks of a PEM file, or data itself when it is DER.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks := pemBlocks(data)
	if len(blocks) == 0 {
		if c, err := x509.ParseCertificates(data); err == nil && len(c) > 0 {
			return c, nil
		}
		return nil, errors.New("no PEM CERTIFICATE block and not a DER certificate")
	}
	var out []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" && b.Type != "X509 CERTIFICATE" && b.Type != "TRUSTED CERTIFICATE" {
			continue
		}
		if b.Type == "TRUSTED CERTIFICATE" {
			// openssl's trusted form appends trust settings after the
			// certificate; ParseCertificates would refuse the trailer.
			c, err := x509.ParseCertificates(b.Bytes)
			if err != nil || len(c) == 0 {
				continue
			}
			out = append(out, c[0])
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate block %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

// parsePrivateKey decodes one key block of any of the forms openssl writes.
func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	if _, encrypted := b.Headers["DEK-Info"]; encrypted || b.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("private key is encrypted; sysmon needs an unencrypted key (openssl pkey -in KEY -out KEY.plain)")
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unsupported key block %q", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", b.Type, k)
	}
	switch s.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("%s: unsupported key type %T", b.Type, k)
	}
	return s, nil
}

func isKeyBlock(t string) bool {
	return t == "PRIVATE KEY" || t == "ENCRYPTED PRIVATE KEY" || strings.HasSuffix(t, " PRIVATE KEY")
}

// parseFirstKey returns the first private key in data. Blocks such as "EC
// PARAMETERS", which `openssl ecparam -genkey` puts before the key, are
// skipped.
func parseFirstKey(data []byte) (crypto.Signer, error) {
	for _, b := range pemBlocks(data) {
		if isKeyBlock(b.Type) {
			return parsePrivateKey(b)
		}
	}
	return nil, errors.New("no PRIVATE KEY block")
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// LoadKeyPair loads a certificate chain and its private key. With keyFile ""
// the key is read from certFile, which then holds both, in either order, as
// the original CA's client_keys/*.pem files do; the key may be PKCS#8 ("PRIVATE
// KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). The first
// certificate must match the key; further certificates are sent as the
// chain. Errors name the file and what is missing.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certData, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read certificate file: %w", err)
	}
	keyData, keyName := certData, certFile
	if keyFile != "" {
		if keyData, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("read key file: %w", err)
		}
		keyName = keyFile
	}
	c, err := parseKeyPair(certData, keyData)
	if err != nil {
		if keyFile == "" {
			return tls.Certificate{}, fmt.Errorf("load key pair from %s: %w", certFile, err)
		}
		return tls.Certificate{}, fmt.Errorf("load key pair %s + %s: %w", certFile, keyName, err)
	}
	return c, nil
}

// parseKeyPair is LoadKeyPair without the file system, for tests and fuzzing.
func parseKeyPair(certData, keyData []byte) (tls.Certificate, error) {
	var out tls.Certificate
	for _, b := range pemBlocks(certData) {
		if b.Type == "CERTIFICATE" {
			out.Certificate = append(out.Certificate, b.Bytes)
		}
	}
	if len(out.Certificate) == 0 {
		return out, errors.New("no CERTIFICATE block")
	}
	key, err := parseFirstKey(keyData)
	if err != nil {
		return tls.Certificate{}, err
	}
	// The leaf is the certificate of this key. It comes first in files that
	// openssl and sysmon write, but a hand-made bundle may put the CA first;
	// TLS wants the leaf first, so move it there.
	var leaf *x509.Certificate
	for i, der := range out.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("parse certificate %d: %w", i+1, err)
		}
		if leaf == nil && publicKeysEqual(key.Public(), c.PublicKey) {
			leaf = c
			if i > 0 {
				out.Certificate[0], out.Certificate[i] = out.Certificate[i], out.Certificate[0]
			}
		}
	}
	if leaf == nil {
		return tls.Certificate{}, errors.New("private key does not match the certificate")
	}
	out.PrivateKey = key
	out.Leaf = leaf
	return out, nil
}

// LoadCAPool reads the trusted CA certificates from file (PEM with one or
// more certificates, or a single DER certificate) and returns them both as a
// pool and as a list (for CRL signature checks).
func LoadCAPool(file string) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA file: %w", err)
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA certificates from %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}

// NodesAllowed returns the node names cert is bound to, from its
// "sysmon-node:NAME" URI SANs, or nil when the certificate names none (not
// bound: the consumer then applies first-come ownership).
func NodesAllowed(cert *x509.Certificate) []string {
	if cert == nil {
		return nil
	}
	var out []string
	for _, u := range cert.URIs {
		if u == nil || u.Scheme != NodeURIScheme {
			continue
		}
		raw := u.Opaque
		if raw == "" {
			// "sysmon-node://name" is a plausible hand-made spelling.
			raw = strings.TrimPrefix(u.Host+u.Path, "/")
		}
		n, err := url.PathUnescape(raw)
		if err != nil || n == "" {
			continue
		}
		out = append(out, n)
	}
	return out
}

// bytesHasPEM reports whether data looks like PEM rather than DER.
func bytesHasPEM(data []byte) bool { return bytes.Contains(data, []byte("-----BEGIN ")) }
