package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults for validity periods. The CA lives ten years like the original's
// (openssl req -x509 -days 3650); leaf certificates default to about two
// years because sysmon can revoke and reissue them from one binary.
const (
	DefaultCADays   = 3650
	DefaultLeafDays = 825
	// DefaultCRLValidity matches the original openssl.cnf default_crl_days.
	DefaultCRLValidity = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a host whose clock is a little
	// behind the CA's still accepts a certificate minted a moment ago.
	clockSkew = 5 * time.Minute
)

// NodeURIScheme is the scheme of the URI SANs that bind a client certificate
// to node names: "sysmon-node:web1".
const NodeURIScheme = "sysmon-node"

// Paths inside a CA directory, relative to it.
const (
	CACertFile     = "certs/cacert.pem"
	CAKeyFile      = "private/cakey.pem"
	ServerCertFile = "certs/server.crt"
	ServerKeyFile  = "certs/server.key"
	ClientKeysDir  = "client_keys"
	CRLDir         = "crl"
	CRLFile        = "crl/crl.pem"
	indexFile      = "index.txt"
	crlNumberFile  = "crlnumber"
	newCertsDir    = "certs"
)

// InitOptions configures Init.
type InitOptions struct {
	CN    string // subject common name; default "sysmon CA"
	Org   string // subject organization; default "sysmon"
	Days  int    // validity in days; default DefaultCADays
	Force bool   // replace an existing CA (and start a fresh index)
	// Curve is "P-384" (default, as the original CA) or "P-256".
	Curve string
}

// IssueOptions configures IssueServer and IssueClient.
type IssueOptions struct {
	Days  int  // validity in days from NotBefore; default DefaultLeafDays
	Force bool // overwrite existing files
	Curve string
	// NotBefore, when set, replaces "now minus a little clock skew"; NotAfter,
	// when set, replaces NotBefore+Days. They exist so that tests and
	// operators can mint certificates that are not yet or no longer valid.
	NotBefore, NotAfter time.Time
}

// CA is a certificate authority rooted at a directory.
type CA struct {
	Dir  string
	Cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time
}

// Path returns the absolute location of rel (one of the *File constants)
// inside the CA directory.
func (ca *CA) Path(rel string) string { return filepath.Join(ca.Dir, filepath.FromSlash(rel)) }

// Init creates a CA key and self-signed certificate under dir, the directory
// skeleton, an empty index and an initial (empty) CRL. It refuses to replace
// an existing CA unless opts.Force is set.
func Init(dir string, opts InitOptions) (*CA, error) {
	if opts.CN == "" {
		opts.CN = "sysmon CA"
	}
	if opts.Org == "" {
		opts.Org = "sysmon"
	}
	if opts.Days == 0 {
		opts.Days = DefaultCADays
	}
	if opts.Days < 0 {
		return nil, invalidf("CA validity %d days: must be positive", opts.Days)
	}
	if err := checkName("CA common name", opts.CN); err != nil {
		return nil, err
	}
	if err := checkName("organization", opts.Org); err != nil {
		return nil, err
	}
	if err := makeLayout(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	ca := &CA{Dir: dir, now: time.Now}
	if err := checkFree(opts.Force, ca.Path(CACertFile), ca.Path(CAKeyFile)); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	key, err := newKey(opts.Curve)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: opts.CN, Organization: []string{opts.Org}, OrganizationalUnit: []string{"root"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.AddDate(0, 0, opts.Days),
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		// Path length 0: this CA signs leaves only, so a stolen leaf key or a
		// mis-issued certificate can never act as an intermediate.
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	// Key first: should the certificate write fail, a rerun with --force
	// replaces both; the reverse order could leave a certificate whose key
	// is lost.
	if err := writeFileAtomic(ca.Path(CAKeyFile), keyPEM, 0o400, opts.Force); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(ca.Path(CACertFile), certPEM(der), 0o644, opts.Force); err != nil {
		return nil, err
	}
	ca.Cert, ca.key = cert, key

	// A new CA starts a new database: serials of the previous CA mean
	// nothing under the new key. Keep the old index for the record.
	if old, err := os.ReadFile(ca.Path(indexFile)); err == nil && len(old) > 0 {
		if err := writeFileAtomic(ca.Path(indexFile+".old"), old, 0o644, true); err != nil {
			return nil, err
		}
	}
	if err := writeFileAtomic(ca.Path(indexFile), nil, 0o644, true); err != nil {
		return nil, err
	}
	// openssl ca refuses to run without the .attr file on some versions and
	// would insist on unique subjects by default; reissuing a client under
	// the same name is normal here.
	if err := writeFileAtomic(ca.Path(indexFile+".attr"), []byte("unique_subject = no\n"), 0o644, true); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(ca.Path(crlNumberFile), []byte("01\n"), 0o644, true); err != nil {
		return nil, err
	}
	if err := ca.writeCRLLocked(DefaultCRLValidity); err != nil {
		return nil, err
	}
	return ca, nil
}

func makeLayout(dir string) error {
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{
		{"", 0o755}, {"certs", 0o755}, {"private", 0o700}, {ClientKeysDir, 0o700}, {CRLDir, 0o755},
	} {
		p := filepath.Join(dir, d.name)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return fmt.Errorf("create CA directory %s: %w", p, err)
		}
	}
	return nil
}

// Open loads the CA certificate and key from dir. The key may be PKCS#8,
// SEC 1 (EC) or PKCS#1 (RSA, as the original's `openssl genrsa` CA made);
// it must match the certificate.
func Open(dir string) (*CA, error) {
	ca := &CA{Dir: dir, now: time.Now}
	data, err := os.ReadFile(ca.Path(CACertFile))
	if err != nil {
		return nil, fmt.Errorf("open CA in %s (run `sysmon ca init` first?): %w", dir, err)
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", ca.Path(CACertFile), err)
	}
	ca.Cert = certs[0]
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s is not a CA (basicConstraints CA:FALSE)", ca.Path(CACertFile))
	}
	kdata, err := os.ReadFile(ca.Path(CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open CA key: %w", err)
	}
	key, err := parseFirstKey(kdata)
	if err != nil {
		return nil, fmt.Errorf("read CA key %s: %w", ca.Path(CAKeyFile), err)
	}
	if !publicKeysEqual(key.Public(), ca.Cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not match certificate %s", ca.Path(CAKeyFile), ca.Path(CACertFile))
	}
	ca.key = key
	return ca, nil
}

// IssueServer issues the consumer's certificate for hosts (DNS names and IP
// addresses, all put in the subjectAltName; the first is also the CN) with
// extended key usage serverAuth, writing certs/server.crt and
// certs/server.key (0600).
func (ca *CA) IssueServer(hosts []string, opts IssueOptions) (certPath, keyPath string, err error) {
	if len(hosts) == 0 {
		return "", "", invalidf("server certificate: at least one host name or IP address is required")
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         hosts[0],
			Organization:       ca.Cert.Subject.Organization,
			OrganizationalUnit: []string{"server"},
		},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if err := checkHostName(h); err != nil {
			return "", "", err
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	certPath, keyPath = ca.Path(ServerCertFile), ca.Path(ServerKeyFile)
	if err := checkFree(opts.Force, certPath, keyPath); err != nil {
		return "", "", fmt.Errorf("issue server certificate: %w", err)
	}
	der, keyPEM, err := ca.issue(tmpl, opts)
	if err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, opts.Force); err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(certPath, certPEM(der), 0o644, opts.Force); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// IssueClient issues a producer's certificate with extended key usage
// clientAuth: subject CN=name, the e-mail address as an rfc822Name SAN, and
// one "sysmon-node:NODE" URI SAN per node it may report for. It writes
// client_keys/<email>_<YYYYMMDD>.pem (key then certificate, as the original
// CA did) plus .key and .crt, and returns the .pem path.
func (ca *CA) IssueClient(name, email string, nodes []string, opts IssueOptions) (string, error) {
	if err := checkName("client name", name); err != nil {
		return "", err
	}
	if err := checkEmail(email); err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         name,
			Organization:       ca.Cert.Subject.Organization,
			OrganizationalUnit: []string{"client"},
		},
		EmailAddresses: []string{email},
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if err := checkName("node name", n); err != nil {
			return "", err
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: NodeURIScheme, Opaque: url.PathEscape(n)})
	}
	base := strings.TrimSuffix(ca.ClientPath(name, email), ".pem")
	pemPath, crtPath, keyPath := base+".pem", base+".crt", base+".key"
	if err := checkFree(opts.Force, pemPath, crtPath, keyPath); err != nil {
		return "", fmt.Errorf("issue client certificate: %w", err)
	}
	der, keyPEM, err := ca.issue(tmpl, opts)
	if err != nil {
		return "", err
	}
	crt := certPEM(der)
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, opts.Force); err != nil {
		return "", err
	}
	if err := writeFileAtomic(crtPath, crt, 0o644, opts.Force); err != nil {
		return "", err
	}
	if err := writeFileAtomic(pemPath, append(append([]byte{}, keyPEM...), crt...), 0o600, opts.Force); err != nil {
		return "", err
	}
	return pemPath, nil
}

// issue fills in serial, validity and key identifiers, signs tmpl with a
// fresh key, records the certificate in the index and in certs/<SERIAL>.pem,
// and returns the certificate DER and the PEM of its private key.
func (ca *CA) issue(tmpl *x509.Certificate, opts IssueOptions) ([]byte, []byte, error) {
	if ca.key == nil {
		return nil, nil, errors.New("CA has no private key loaded")
	}
	key, err := newKey(opts.Curve)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return nil, nil, err
	}
	days := opts.Days
	if days == 0 {
		days = DefaultLeafDays
	}
	if days < 0 {
		return nil, nil, invalidf("validity %d days: must be positive", days)
	}
	tmpl.NotBefore = opts.NotBefore
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = ca.now().Add(-clockSkew)
	}
	tmpl.NotAfter = opts.NotAfter
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = tmpl.NotBefore.Add(clockSkew).AddDate(0, 0, days)
	}
	// A leaf outliving its CA fails verification on the day the CA expires
	// anyway; clamp so that the certificate states the truth.
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ca.record(cert); err != nil {
		return nil, nil, err
	}
	return der, keyPEM, nil
}

func newKey(curve string) (crypto.Signer, error) {
	var c elliptic.Curve
	switch strings.ToUpper(strings.TrimSpace(curve)) {
	case "", "P-384", "P384", "SECP384R1":
		c = elliptic.P384()
	case "P-256", "P256", "PRIME256V1", "SECP256R1":
		c = elliptic.P256()
	default:
		return nil, invalidf("curve %q: want P-384 or P-256", curve)
	}
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", c.Params().Name, err)
	}
	return k, nil
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// randomSerial returns a uniformly random positive serial below 2^128, as
// CA/Browser Forum practice and mkcert do: unpredictable serials make
// chosen-prefix collision attacks on the signature impractical.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		s, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if s.Sign() > 0 {
			return s, nil
		}
	}
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bit string (RFC 5280
// 4.2.1.2 method 1), what openssl's subjectKeyIdentifier=hash computes.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}

func checkName(what, s string) error {
	if strings.TrimSpace(s) == "" {
		return invalidf("%s is empty", what)
	}
	if len(s) > 64 {
		// RFC 5280 upper bound for CN and O; openssl refuses longer ones.
		return invalidf("%s %q: longer than 64 bytes", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return invalidf("%s %q: contains a control character", what, s)
		}
	}
	return nil
}

func checkHostName(h string) error {
	if h == "" || len(h) > 253 {
		return invalidf("host name %q: empty or too long", h)
	}
	for _, r := range h {
		ok := r == '-' || r == '.' || r == '*' || r == '_' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return invalidf("host name %q: invalid character %q", h, r)
		}
	}
	return nil
}

// checkEmail keeps the address usable as a file name, since the original's
// layout names client files after it.
func checkEmail(e string) error {
	if err := checkName("e-mail address", e); err != nil {
		return err
	}
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.ContainsAny(e, "/\\ ") || strings.HasPrefix(e, ".") {
		return invalidf("e-mail address %q: want user@domain without spaces or slashes", e)
	}
	return nil
}

// ClientPath is the key+certificate PEM that IssueClient writes (or would
// write) today for name and email: client_keys/<email>_<YYYYMMDD>.pem, or,
// when that holds another client's certificate, <email>_<YYYYMMDD>_<name>.pem
// — one operator e-mail often signs for many hosts on one day. --force
// replaces this client's own files, never another client's.
func (ca *CA) ClientPath(name, email string) string {
	base := filepath.Join(ca.Dir, ClientKeysDir, email+"_"+ca.now().UTC().Format("20060102"))
	if crtData, err := os.ReadFile(base + ".crt"); err == nil {
		if certs, err := parseCertificates(crtData); err == nil && len(certs) > 0 && certs[0].Subject.CommonName != name {
			base += "_" + fileSafe(name)
		}
	}
	return base + ".pem"
}

// IsRevoked reports whether the index records the certificate in file (a
// certificate or key+certificate PEM) as revoked.
func (ca *CA) IsRevoked(file string) (bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	certs, err := parseCertificates(data)
	if err != nil || len(certs) == 0 {
		return false, fmt.Errorf("%s: no certificate", file)
	}
	entries, err := ca.List()
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Serial.Cmp(certs[0].SerialNumber) == 0 {
			return e.Status == "revoked", nil
		}
	}
	return false, nil
}

// fileSafe keeps a name to characters that are safe in a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || r == '@' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}
