package doctor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sysmon/sysmon/pkg/pki"
)

// trust is what the CA file yielded.
type trust struct {
	pool *x509.CertPool
	cas  []*x509.Certificate
}

// loadCA loads the CA file of key and checks the CA certificates' dates.
func (c *checker) loadCA(key, path string) *trust {
	pool, cas, err := pki.LoadCAPool(path)
	if err != nil {
		c.failed[key] = true
		c.r.add(Fail, key, "point it at the CA certificate (certs/certs/cacert.pem of `sysmon ca init`)", "%v", err)
		return nil
	}
	for _, ca := range cas {
		if !ca.IsCA {
			c.r.add(Warn, key, "point it at the CA's own certificate, not a leaf", "%s holds %s, which is not a CA certificate (basicConstraints CA:FALSE)", path, name(ca))
		}
	}
	c.r.pass(key, "%s: %d CA certificate(s): %s", path, len(cas), name(cas[0]))
	for _, ca := range cas {
		c.expiry(key, "CA certificate "+name(ca), ca, "renew the CA (sysmon ca init --force) and reissue every certificate")
	}
	return &trust{pool: pool, cas: cas}
}

// loadPair loads the certificate and key and checks the key file's mode.
// keyPath "" means the key is inside certPath.
func (c *checker) loadPair(certKey, certPath, keyKey, keyPath, fix string) *tls.Certificate {
	pair, err := pki.LoadKeyPair(certPath, keyPath)
	if err != nil {
		c.failed[certKey] = true
		c.r.add(Fail, certKey, fix, "%v", err)
		return nil
	}
	where := certPath
	if keyPath != "" {
		where = keyPath
	} else {
		keyKey = certKey
	}
	c.r.pass(certKey, "key matches certificate %s", name(pair.Leaf))
	if fi, err := os.Stat(where); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.r.add(Warn, keyKey, fmt.Sprintf("chmod 600 %s", where), "%s holds a private key and is readable by others (mode %04o)", where, fi.Mode().Perm())
	}
	return &pair
}

// chain checks that the leaf chains to the CA, apart from dates, which
// expiry reports on their own.
func (c *checker) chain(key string, pair *tls.Certificate, t *trust, caKey, fix string) {
	leaf := pair.Leaf
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.pool,
		Intermediates: inter,
		CurrentTime:   c.o.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired && signedBy(leaf, pair, t.cas) {
		// Dates are expiry's business; here only the signature counts.
		err = nil
	}
	if err != nil {
		c.r.add(Fail, key, fix, "certificate %s (issuer %s) does not chain to the CA in %s: %v", name(leaf), leaf.Issuer.CommonName, caKey, err)
		return
	}
	c.r.pass(key, "certificate chains to the CA in %s", caKey)
}

// signedBy reports whether leaf, through the chain it came with, is signed
// by one of cas, regardless of dates.
func signedBy(leaf *x509.Certificate, pair *tls.Certificate, cas []*x509.Certificate) bool {
	cur := leaf
	for i := 1; ; i++ {
		for _, ca := range cas {
			if cur.CheckSignatureFrom(ca) == nil {
				return true
			}
		}
		if i >= len(pair.Certificate) {
			return false
		}
		next, err := x509.ParseCertificate(pair.Certificate[i])
		if err != nil || cur.CheckSignatureFrom(next) != nil {
			return false
		}
		cur = next
	}
}

// eku checks that the leaf may be used for want (serverAuth for the
// consumer, clientAuth for the producer). No extended key usage at all is
// unrestricted (RFC 5280) and is how the original CA issued certificates.
func (c *checker) eku(key string, leaf *x509.Certificate, want x509.ExtKeyUsage, wantName, fix string) {
	if len(leaf.ExtKeyUsage) == 0 && len(leaf.UnknownExtKeyUsage) == 0 {
		c.r.pass(key, "no extended key usage: unrestricted, fits %s (as the original CA issued)", wantName)
		return
	}
	if slices.Contains(leaf.ExtKeyUsage, want) || slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		c.r.pass(key, "extended key usage includes %s", wantName)
		return
	}
	c.r.add(Fail, key, fix, "extended key usage %s lacks %s: the peer will refuse this certificate", ekuNames(leaf), wantName)
}

// expiry fails a certificate outside its validity and warns within
// ExpiryWarning of the end.
func (c *checker) expiry(key, what string, cert *x509.Certificate, fix string) {
	now := c.o.Now()
	left := cert.NotAfter.Sub(now)
	days := int(left.Hours() / 24)
	switch {
	case now.Before(cert.NotBefore):
		c.r.add(Fail, key, "check this host's clock, or wait until then", "%s is not valid before %s", what, cert.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		c.r.add(Fail, key, fix, "%s expired on %s", what, cert.NotAfter.UTC().Format(time.DateOnly))
	case left < c.o.ExpiryWarning:
		c.r.add(Warn, key, fix, "%s expires in %d days (%s)", what, days, cert.NotAfter.UTC().Format(time.DateOnly))
	default:
		c.r.pass(key, "%s valid until %s (%d days)", what, cert.NotAfter.UTC().Format(time.DateOnly), days)
	}
}

func name(cert *x509.Certificate) string {
	if cert == nil {
		return "(none)"
	}
	if cert.Subject.CommonName != "" {
		return fmt.Sprintf("%q", cert.Subject.CommonName)
	}
	return cert.Subject.String()
}

func ekuNames(cert *x509.Certificate) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageServerAuth:      "serverAuth",
		x509.ExtKeyUsageClientAuth:      "clientAuth",
		x509.ExtKeyUsageCodeSigning:     "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection",
		x509.ExtKeyUsageTimeStamping:    "timeStamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
	}
	var out []string
	for _, u := range cert.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("usage%d", u))
		}
	}
	for _, oid := range cert.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return "[" + strings.Join(out, " ") + "]"
}
