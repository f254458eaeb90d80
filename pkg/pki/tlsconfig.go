package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// ErrWrongEKU is returned by the server's connection check for a client
// certificate whose extended key usage excludes clientAuth.
var ErrWrongEKU = errors.New("client certificate is not for client authentication (extended key usage lacks clientAuth)")

// ServerTLSConfig returns the consumer's TLS configuration: TLS 1.2 at
// least (1.3 preferred by Go), a client certificate required and verified
// against clientCAs, its extended key usage allowing clientAuth, and its
// serial checked against rev (nil: no revocation checking) on every
// handshake, resumed ones included.
//
// A client certificate without any extended key usage is accepted: RFC 5280
// reads that as unrestricted, and the original CA issued its client
// certificates that way.
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool, rev *Revocations) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		// VerifyConnection, unlike VerifyPeerCertificate, also runs when a
		// client resumes a session from a ticket, so a certificate revoked
		// after its first connection cannot come back through resumption.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			leaf := cs.PeerCertificates[0]
			if err := checkClientEKU(leaf); err != nil {
				return err
			}
			return rev.Check(leaf)
		},
	}
}

func checkClientEKU(c *x509.Certificate) error {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return nil
	}
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil
	}
	return fmt.Errorf("certificate %q serial %s: %w", c.Subject.CommonName, SerialHex(c.SerialNumber), ErrWrongEKU)
}

// ClientTLSConfig returns the producer's TLS configuration presenting cert
// and trusting roots. With serverName set, the consumer's certificate must
// name it (SAN) as usual. With serverName "" the chain is verified against
// roots, including the serverAuth usage and validity dates, but no host name
// is checked: that is how the original producer ran (SNI and host-name
// checking disabled), and its CA issued server certificates with the host
// only in the CN, which Go no longer matches.
func ClientTLSConfig(cert tls.Certificate, roots *x509.CertPool, serverName string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		ServerName: serverName,
		// Always present the certificate. With Certificates alone Go sends
		// it only when its issuer is among the CAs the server lists, so a
		// producer holding a certificate from the wrong CA would be refused
		// as "no certificate" and the operator sent looking in the wrong
		// place.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	}
	if serverName == "" {
		// InsecureSkipVerify switches off only Go's built-in verification,
		// which cannot be told to skip the host name; VerifyConnection
		// below puts the chain verification back.
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyChainNoHost(cs.PeerCertificates, roots)
		}
	}
	return c
}

func verifyChainNoHost(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify server certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}
