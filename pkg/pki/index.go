package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Revocation reason codes (RFC 5280 5.3.1) that openssl's index can hold.
var reasonNames = []string{
	0: "unspecified",
	1: "keyCompromise",
	2: "CACompromise",
	3: "affiliationChanged",
	4: "superseded",
	5: "cessationOfOperation",
	6: "certificateHold",
}

// ParseReason accepts a reason code (0-6) or its openssl name
// (keyCompromise, superseded, ...; case-insensitive).
func ParseReason(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 0 && n < len(reasonNames) {
			return n, nil
		}
		return 0, invalidf("revocation reason %d: want 0-%d", n, len(reasonNames)-1)
	}
	for i, name := range reasonNames {
		if strings.EqualFold(s, name) {
			return i, nil
		}
	}
	return 0, invalidf("revocation reason %q: want one of %s", s, strings.Join(reasonNames, ", "))
}

// ReasonName returns openssl's name of a reason code.
func ReasonName(code int) string {
	if code >= 0 && code < len(reasonNames) {
		return reasonNames[code]
	}
	return strconv.Itoa(code)
}

// Entry is one certificate of the CA's index.
type Entry struct {
	Serial    *big.Int
	Subject   string // openssl one-line form, /O=.../CN=...
	Kind      string // "ca", "server", "client" or "unknown"
	NotAfter  time.Time
	Status    string // "valid", "revoked" or "expired"
	RevokedAt time.Time
	Reason    int      // when revoked
	Nodes     []string // client node binding, when the certificate is on file
	File      string   // certs/<SERIAL>.pem when present
}

// SerialHex formats a serial as openssl does in index.txt and in file
// names: upper-case hex with an even number of digits.
func SerialHex(s *big.Int) string {
	h := strings.ToUpper(s.Text(16))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

// ParseSerial parses a serial given as hex, optionally with colons (as
// `openssl x509 -serial` and browsers print it) or a 0x prefix.
func ParseSerial(s string) (*big.Int, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	t = strings.TrimPrefix(t, "serial=")
	t = strings.ReplaceAll(t, ":", "")
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || t == "" || n.Sign() < 0 {
		return nil, invalidf("serial %q: want hex digits", s)
	}
	return n, nil
}

type indexRow struct {
	status    byte // 'V', 'R', 'E'
	notAfter  time.Time
	revokedAt time.Time
	reason    int // -1: none recorded
	serial    *big.Int
	file      string
	subject   string
}

// openssl writes UTCTime up to 2049 and GeneralizedTime after, in index.txt
// as in certificates.
func formatIndexTime(t time.Time) string {
	t = t.UTC()
	if t.Year() >= 1950 && t.Year() < 2050 {
		return t.Format("060102150405Z")
	}
	return t.Format("20060102150405Z")
}

func parseIndexTime(s string) (time.Time, error) {
	switch len(s) {
	case 13:
		t, err := time.Parse("060102150405Z", s)
		if err != nil {
			return t, err
		}
		// Go maps 69-99 to 19xx; UTCTime's rule is 50-99.
		if t.Year() >= 2050 {
			t = t.AddDate(-100, 0, 0)
		}
		return t, nil
	case 15:
		return time.Parse("20060102150405Z", s)
	}
	return time.Time{}, fmt.Errorf("time %q: want YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ", s)
}

func parseIndex(data []byte) ([]indexRow, error) {
	var rows []indexRow
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 6 || len(f[0]) != 1 {
			return nil, fmt.Errorf("index.txt line %d: want 6 tab-separated fields", i+1)
		}
		r := indexRow{status: f[0][0], reason: -1, file: f[4], subject: strings.Join(f[5:], "\t")}
		var err error
		if r.notAfter, err = parseIndexTime(f[1]); err != nil {
			return nil, fmt.Errorf("index.txt line %d: %w", i+1, err)
		}
		if f[2] != "" {
			rev, reason, _ := strings.Cut(f[2], ",")
			if r.revokedAt, err = parseIndexTime(rev); err != nil {
				return nil, fmt.Errorf("index.txt line %d: %w", i+1, err)
			}
			if reason != "" {
				// "holdInstruction,OID" and similar carry a second comma.
				name, _, _ := strings.Cut(reason, ",")
				if n, err := ParseReason(name); err == nil {
					r.reason = n
				}
			}
		}
		if r.serial, err = ParseSerial(f[3]); err != nil {
			return nil, fmt.Errorf("index.txt line %d: %w", i+1, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func formatIndex(rows []indexRow) []byte {
	var b bytes.Buffer
	for _, r := range rows {
		rev := ""
		if r.status == 'R' {
			rev = formatIndexTime(r.revokedAt)
			if r.reason > 0 {
				rev += "," + ReasonName(r.reason)
			}
		}
		file := r.file
		if file == "" {
			file = "unknown"
		}
		fmt.Fprintf(&b, "%c\t%s\t%s\t%s\t%s\t%s\n", r.status, formatIndexTime(r.notAfter), rev, SerialHex(r.serial), file, r.subject)
	}
	return b.Bytes()
}

func (ca *CA) readIndex() ([]indexRow, error) {
	data, err := os.ReadFile(ca.Path(indexFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CA index: %w", err)
	}
	return parseIndex(data)
}

// record adds a freshly issued certificate to index.txt and keeps a copy
// as certs/<SERIAL>.pem, as `openssl ca` does with new_certs_dir.
func (ca *CA) record(cert *x509.Certificate) error {
	unlock, err := lockDir(ca.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	rows, err := ca.readIndex()
	if err != nil {
		return err
	}
	serial := SerialHex(cert.SerialNumber)
	if err := writeFileAtomic(filepath.Join(ca.Dir, newCertsDir, serial+".pem"), certPEM(cert.Raw), 0o644, false); err != nil {
		return fmt.Errorf("record certificate: %w", err)
	}
	rows = append(rows, indexRow{status: 'V', notAfter: cert.NotAfter, reason: -1, serial: cert.SerialNumber, subject: onelineName(cert.RawSubject)})
	return writeFileAtomic(ca.Path(indexFile), formatIndex(rows), 0o644, true)
}

var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
	"2.5.4.11": "OU", "2.5.4.5": "serialNumber", "2.5.4.9": "street", "2.5.4.17": "postalCode",
	"1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// onelineName renders a name as X509_NAME_oneline does: /C=SE/O=Org/CN=x,
// in encoding order. Tabs and newlines would break index.txt and become
// spaces.
func onelineName(raw []byte) string {
	var rdns []rawRDNSET
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		return "/"
	}
	var b strings.Builder
	for _, rdn := range rdns {
		for _, atv := range rdn {
			name, ok := shortNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			v := string(atv.Value.Bytes)
			if s, ok := canonStringRaw(atv.Value); ok {
				v = s
			}
			v = strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return ' '
				}
				return r
			}, v)
			fmt.Fprintf(&b, "/%s=%s", name, v)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

type rawATV struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rawRDNSET is one RDN; encoding/asn1 reads a slice type whose name ends in
// SET as a SET OF.
type rawRDNSET []rawATV

// canonStringRaw decodes a directory string without folding it.
func canonStringRaw(v asn1.RawValue) (string, bool) {
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString, 26:
		return string(v.Bytes), true
	}
	return "", false
}

// List returns the CA itself followed by every certificate in index.txt, in
// issuance order, with its current status.
func (ca *CA) List() ([]Entry, error) {
	rows, err := ca.readIndex()
	if err != nil {
		return nil, err
	}
	now := ca.now()
	out := []Entry{{
		Serial: ca.Cert.SerialNumber, Subject: onelineName(ca.Cert.RawSubject), Kind: "ca",
		NotAfter: ca.Cert.NotAfter, Status: status(ca.Cert.NotAfter, now, false), File: CACertFile,
	}}
	for _, r := range rows {
		e := Entry{Serial: r.serial, Subject: r.subject, Kind: "unknown", NotAfter: r.notAfter,
			Status: status(r.notAfter, now, r.status == 'R'), RevokedAt: r.revokedAt, Reason: max(r.reason, 0)}
		rel := newCertsDir + "/" + SerialHex(r.serial) + ".pem"
		if data, err := os.ReadFile(ca.Path(rel)); err == nil {
			if certs, err := parseCertificates(data); err == nil {
				e.Kind = certKind(certs[0])
				e.Nodes = NodesAllowed(certs[0])
				e.File = rel
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func status(notAfter, now time.Time, revoked bool) string {
	switch {
	case revoked:
		return "revoked"
	case now.After(notAfter):
		return "expired"
	}
	return "valid"
}

// certKind classifies by extended key usage, then by the OU that the
// original's scripts set (OU=server, OU=client): its certificates carry no
// extended key usage at all.
func certKind(c *x509.Certificate) string {
	if c.IsCA && bytes.Equal(c.RawIssuer, c.RawSubject) {
		return "ca"
	}
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "client"
	}
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return "server"
	}
	for _, ou := range c.Subject.OrganizationalUnit {
		switch strings.ToLower(ou) {
		case "server", "client":
			return strings.ToLower(ou)
		}
	}
	return "unknown"
}

// ErrNotFound is returned by Revoke for a serial that the index does not
// hold.
var ErrNotFound = errors.New("not in the CA index")

// ErrAlreadyRevoked is returned by Revoke for a certificate revoked before.
var ErrAlreadyRevoked = errors.New("already revoked")

// Revoke marks a certificate revoked in index.txt and writes a new CRL
// (valid DefaultCRLValidity) so that consumers watching crl/ cut it off.
// fileOrSerial is a certificate file (PEM or DER, also a client's key+cert
// PEM) or a serial in hex; reason is an RFC 5280 code (see ParseReason).
func (ca *CA) Revoke(fileOrSerial string, reason int) error {
	if reason < 0 || reason >= len(reasonNames) {
		return invalidf("revocation reason %d: want 0-%d", reason, len(reasonNames)-1)
	}
	serial, err := ca.serialOf(fileOrSerial)
	if err != nil {
		return err
	}
	unlock, err := lockDir(ca.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	rows, err := ca.readIndex()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r indexRow) bool { return r.serial.Cmp(serial) == 0 })
	if i < 0 {
		return fmt.Errorf("revoke serial %s: %w", SerialHex(serial), ErrNotFound)
	}
	if rows[i].status == 'R' {
		return fmt.Errorf("revoke serial %s: %w", SerialHex(serial), ErrAlreadyRevoked)
	}
	rows[i].status, rows[i].revokedAt, rows[i].reason = 'R', ca.now(), reason
	if err := writeFileAtomic(ca.Path(indexFile), formatIndex(rows), 0o644, true); err != nil {
		return err
	}
	return ca.writeCRLLocked(DefaultCRLValidity)
}

func (ca *CA) serialOf(arg string) (*big.Int, error) {
	if data, err := os.ReadFile(arg); err == nil {
		certs, err := parseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("revoke %s: %w", arg, err)
		}
		c := certs[0]
		if !bytes.Equal(c.RawIssuer, ca.Cert.RawSubject) || c.CheckSignatureFrom(ca.Cert) != nil {
			return nil, invalidf("revoke %s: not issued by this CA (%s)", arg, onelineName(ca.Cert.RawSubject))
		}
		return c.SerialNumber, nil
	}
	s, err := ParseSerial(arg)
	if err != nil {
		return nil, invalidf("revoke %q: neither a readable certificate file nor a hex serial", arg)
	}
	return s, nil
}

// WriteCRL signs a CRL of every revoked certificate in the index, valid for
// validity (next-update = now + validity), and writes it to crl/crl.pem with
// the <hash>.r0 link that openssl rehash (and the original's scripts) make.
func (ca *CA) WriteCRL(validity time.Duration) error {
	unlock, err := lockDir(ca.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	return ca.writeCRLLocked(validity)
}

var hashLinkRE = regexp.MustCompile(`^[0-9a-f]{8}\.r[0-9]+$`)

func (ca *CA) writeCRLLocked(validity time.Duration) error {
	if validity <= 0 {
		return invalidf("CRL validity %s: must be positive", validity)
	}
	rows, err := ca.readIndex()
	if err != nil {
		return err
	}
	number := big.NewInt(1)
	if data, err := os.ReadFile(ca.Path(crlNumberFile)); err == nil {
		if n, ok := new(big.Int).SetString(strings.TrimSpace(string(data)), 16); ok && n.Sign() > 0 {
			number = n
		}
	}
	now := ca.now()
	tmpl := &x509.RevocationList{
		Number: number,
		// Backdated like certificates: openssl rejects a CRL whose
		// thisUpdate lies in its future.
		ThisUpdate: now.Add(-clockSkew),
		NextUpdate: now.Add(validity),
	}
	for _, r := range rows {
		if r.status != 'R' {
			continue
		}
		e := x509.RevocationListEntry{SerialNumber: r.serial, RevocationTime: r.revokedAt}
		if r.reason > 0 {
			e.ReasonCode = r.reason
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
	}
	issuer := ca.Cert
	if issuer.KeyUsage == 0 {
		// No keyUsage extension means every usage is allowed (RFC 5280
		// 4.2.1.3), which is how the original's openssl CA certificates are
		// made; Go insists on seeing the crlSign bit, so show it a copy.
		c := *issuer
		c.KeyUsage = x509.KeyUsageCRLSign
		issuer = &c
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, ca.key)
	if err != nil {
		return fmt.Errorf("sign CRL: %w", err)
	}
	crlPath := ca.Path(CRLFile)
	if err := writeFileAtomic(crlPath, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644, true); err != nil {
		return err
	}
	next := new(big.Int).Add(number, big.NewInt(1))
	if err := writeFileAtomic(ca.Path(crlNumberFile), []byte(SerialHex(next)+"\n"), 0o644, true); err != nil {
		return err
	}
	h, err := NameHash(ca.Cert.RawSubject)
	if err != nil {
		return fmt.Errorf("hash CA name: %w", err)
	}
	link := fmt.Sprintf("%08x.r0", h)
	dir := filepath.Dir(crlPath)
	// Drop hash links to crl.pem under another name (a CA re-initialised
	// with a new subject); links to other files are the operator's.
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if e.Name() == link || !hashLinkRE.MatchString(e.Name()) {
				continue
			}
			if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && t == filepath.Base(crlPath) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	if t, err := os.Readlink(filepath.Join(dir, link)); err == nil && t == filepath.Base(crlPath) {
		return nil
	}
	tmp := filepath.Join(dir, "."+link+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(crlPath), tmp); err != nil {
		return fmt.Errorf("link CRL: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, link)); err != nil {
		return fmt.Errorf("link CRL: %w", err)
	}
	return nil
}
