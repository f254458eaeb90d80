package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRevoked is returned by Check for a certificate listed on a verified CRL.
var ErrRevoked = errors.New("certificate revoked")

// ErrCRLStale is returned by Check in fail-closed mode when the issuer has
// no verified CRL that is still within its next-update time.
var ErrCRLStale = errors.New("no current CRL for the issuer (fail-closed)")

// crlNameRE matches the files a CRL directory may hold: *.crl, *.pem, *.der
// and the <hash>.rN links of openssl rehash / c_rehash.
var crlNameRE = regexp.MustCompile(`(?i)(\.crl|\.pem|\.der|^[0-9a-f]{8}\.r[0-9]+)$`)

type revokedEntry struct {
	at     time.Time
	reason int
}

// issuerState is what the loaded CRLs say about one trusted CA.
type issuerState struct {
	ca         *x509.Certificate
	revoked    map[string]revokedEntry // serial text (base 16) -> entry
	hasCRL     bool
	nextUpdate time.Time // of the newest CRL (highest thisUpdate)
	newest     time.Time // thisUpdate of the newest CRL
	crlNumber  *big.Int
	source     string // file of that CRL
}

type fileKey struct {
	size  int64
	mtime time.Time
	ino   uint64
}

type fileCache struct {
	key  fileKey
	crls []*x509.RevocationList
}

// Revocations holds the certificate revocation lists of a directory,
// verified against the trusted CAs, and answers whether a certificate is
// revoked. It is safe for concurrent use; Watch reloads it when the
// directory changes.
//
// A CRL whose signature does not verify against any trusted CA is ignored
// and logged. A CRL that fails to parse keeps the contents it had at the
// last good load, so a torn write never un-revokes anything. A CRL past its
// next-update is logged at error level; with SetFailClosed(true) it then
// refuses every certificate of that CA until a fresh CRL arrives.
type Revocations struct {
	dir        string
	cas        []*x509.Certificate
	log        *slog.Logger
	now        func() time.Time
	failClosed atomic.Bool

	mu      sync.RWMutex
	issuers map[string]*issuerState // key: string(ca.RawSubject)
	files   map[string]fileCache
	sig     string
	// staleLogged remembers when a stale CRL was last reported, per issuer,
	// to log loudly but not on every tick.
	staleLogged map[string]time.Time
}

// NewRevocations loads every CRL in dir (PEM or DER: *.crl, *.pem, *.der and
// <hash>.rN links), verifying each against cas. dir "" gives an empty set
// (nothing revoked). An unreadable dir is an error; a dir without any
// usable CRL is logged as a warning. logger nil discards logs.
func NewRevocations(dir string, cas []*x509.Certificate, logger *slog.Logger) (*Revocations, error) {
	return NewRevocationsWith(dir, cas, RevocationOptions{Logger: logger})
}

// RevocationOptions configures NewRevocationsWith.
type RevocationOptions struct {
	Logger *slog.Logger // nil discards logs
	// FailClosed is SetFailClosed's setting from the start, so that the
	// report of a CRL already stale at load names the mode in force.
	FailClosed bool
}

// NewRevocationsWith is NewRevocations with options.
func NewRevocationsWith(dir string, cas []*x509.Certificate, o RevocationOptions) (*Revocations, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{dir: dir, cas: cas, log: logger, now: time.Now, files: map[string]fileCache{}, staleLogged: map[string]time.Time{}}
	r.failClosed.Store(o.FailClosed)
	r.issuers = r.emptyIssuers()
	if dir == "" {
		return r, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open CRL directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("CRL directory %s: not a directory", dir)
	}
	// The signature Watch compares against is taken before this first load,
	// not when Watch starts: the consumer opens its database in between
	// (seconds), and a CRL written then would otherwise match the baseline
	// and stay unloaded until the directory changed again. A change racing
	// this load at worst causes one needless reload.
	r.sig = r.dirSignature()
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	n := 0
	for _, st := range r.issuers {
		if st.hasCRL {
			n++
		}
	}
	r.mu.RUnlock()
	if n == 0 {
		r.log.Warn("no verified CRL in CRL directory; no certificate counts as revoked until one appears", "dir", dir)
	}
	r.checkStale(true)
	return r, nil
}

func (r *Revocations) emptyIssuers() map[string]*issuerState {
	m := make(map[string]*issuerState, len(r.cas))
	for _, ca := range r.cas {
		m[string(ca.RawSubject)] = &issuerState{ca: ca, revoked: map[string]revokedEntry{}}
	}
	return m
}

// SetFailClosed selects what happens when a CA's newest CRL is past its
// next-update (or the CA has no CRL in the directory): false (default) keeps
// accepting certificates not listed as revoked and logs the staleness at
// error level; true refuses every certificate of that CA. A change of mode
// repeats the report of any stale CRL, which names the mode in force.
func (r *Revocations) SetFailClosed(on bool) {
	if r == nil {
		return
	}
	if r.failClosed.Swap(on) != on {
		r.checkStale(true)
	}
}

// Dir returns the watched directory.
func (r *Revocations) Dir() string {
	if r == nil {
		return ""
	}
	return r.dir
}

// IsRevoked reports whether serial is listed on any verified CRL. In
// fail-closed mode it also reports true while any trusted CA lacks a
// current CRL, since a bare serial cannot say which CA issued it; Check,
// which knows the issuer, is the precise form. A nil *Revocations revokes
// nothing.
func (r *Revocations) IsRevoked(serial *big.Int) bool {
	if r == nil || serial == nil {
		return false
	}
	key := serial.Text(16)
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, st := range r.issuers {
		if _, ok := st.revoked[key]; ok {
			return true
		}
		if r.failClosed.Load() && r.dir != "" && !st.current(now) {
			return true
		}
	}
	return false
}

func (st *issuerState) current(now time.Time) bool {
	return st.hasCRL && (st.nextUpdate.IsZero() || now.Before(st.nextUpdate))
}

// Check returns an error wrapping ErrRevoked when cert's issuer has a
// verified CRL listing its serial, or ErrCRLStale in fail-closed mode when
// that issuer has no current CRL; otherwise nil. A nil *Revocations accepts
// everything.
func (r *Revocations) Check(cert *x509.Certificate) error {
	if r == nil || cert == nil {
		return nil
	}
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	st := r.issuers[string(cert.RawIssuer)]
	if st == nil {
		// Not one of our CAs: chain verification refuses it; nothing to add.
		return nil
	}
	if e, ok := st.revoked[cert.SerialNumber.Text(16)]; ok {
		return fmt.Errorf("serial %s (%q) revoked %s, reason %s: %w",
			SerialHex(cert.SerialNumber), cert.Subject.CommonName, e.at.UTC().Format(time.RFC3339), ReasonName(e.reason), ErrRevoked)
	}
	if r.failClosed.Load() && r.dir != "" && !st.current(now) {
		return fmt.Errorf("serial %s (%q): issuer %q: %w", SerialHex(cert.SerialNumber), cert.Subject.CommonName, st.ca.Subject.CommonName, ErrCRLStale)
	}
	return nil
}

// Reload rereads the directory now and reports whether the set of revoked
// serials (or a CRL's next-update) changed. Watch calls it; tests and a
// SIGHUP handler may too. Problems with single files are logged, not
// returned; an unreadable directory is an error and keeps the last state.
func (r *Revocations) Reload() (bool, error) {
	if r == nil || r.dir == "" {
		return false, nil
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return false, fmt.Errorf("read CRL directory: %w", err)
	}
	r.mu.RLock()
	oldFiles := r.files
	r.mu.RUnlock()

	files := map[string]fileCache{}
	issuers := r.emptyIssuers()
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !crlNameRE.MatchString(name) {
			continue
		}
		path := filepath.Join(r.dir, name)
		fi, err := os.Stat(path) // follows <hash>.r0 links
		if err != nil {
			r.log.Warn("CRL file unreadable; skipped", "file", path, "err", err)
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		key := fileKey{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
		fc, ok := oldFiles[path]
		if !ok || fc.key != key {
			crls, err := readCRLFile(path)
			switch {
			case err != nil && ok:
				r.log.Error("CRL file no longer parses; keeping its previous contents", "file", path, "err", err)
				fc.key = key
			case err != nil:
				r.log.Error("CRL file does not parse; ignored", "file", path, "err", err)
				continue
			default:
				fc = fileCache{key: key, crls: crls}
			}
		}
		files[path] = fc
		for _, crl := range fc.crls {
			r.apply(issuers, path, crl)
		}
	}

	r.mu.Lock()
	changed := !sameIssuers(r.issuers, issuers)
	r.issuers, r.files = issuers, files
	r.mu.Unlock()
	if changed {
		r.log.Info("CRLs loaded", "dir", r.dir, "revoked", r.count())
	}
	return changed, nil
}

// apply adds a parsed CRL to the state of the CA that signed it.
func (r *Revocations) apply(issuers map[string]*issuerState, path string, crl *x509.RevocationList) {
	// Match by name and signature: two trusted CAs may share a name, and
	// only a CRL signed by the CA's key speaks for it.
	var st *issuerState
	for _, s := range issuers {
		if bytes.Equal(s.ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(s.ca) == nil {
			st = s
			break
		}
	}
	if st == nil {
		r.log.Error("CRL signature does not verify against any trusted CA; ignored", "file", path, "issuer", crl.Issuer.String())
		return
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber == nil {
			continue
		}
		st.revoked[e.SerialNumber.Text(16)] = revokedEntry{at: e.RevocationTime, reason: e.ReasonCode}
	}
	if !st.hasCRL || crl.ThisUpdate.After(st.thisUpdateOf()) || (crl.ThisUpdate.Equal(st.thisUpdateOf()) && crl.NextUpdate.After(st.nextUpdate)) {
		st.nextUpdate, st.crlNumber, st.source = crl.NextUpdate, crl.Number, path
		st.newest = crl.ThisUpdate
	}
	st.hasCRL = true
}

func (st *issuerState) thisUpdateOf() time.Time { return st.newest }

func sameIssuers(a, b map[string]*issuerState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y := b[k]
		if y == nil || x.hasCRL != y.hasCRL || !x.nextUpdate.Equal(y.nextUpdate) || len(x.revoked) != len(y.revoked) {
			return false
		}
		for s := range x.revoked {
			if _, ok := y.revoked[s]; !ok {
				return false
			}
		}
	}
	return true
}

func (r *Revocations) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, st := range r.issuers {
		n += len(st.revoked)
	}
	return n
}

// readCRLFile parses every CRL in a file: PEM "X509 CRL" blocks, or DER.
func readCRLFile(path string) ([]*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCRLs(data)
}

func parseCRLs(data []byte) ([]*x509.RevocationList, error) {
	if !bytesHasPEM(data) {
		crl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, fmt.Errorf("parse DER CRL: %w", err)
		}
		return []*x509.RevocationList{crl}, nil
	}
	var out []*x509.RevocationList
	for _, b := range pemBlocks(data) {
		if b.Type != "X509 CRL" && b.Type != "CRL" {
			continue // a certificate or key in a *.pem file is not ours to judge
		}
		crl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PEM CRL: %w", err)
		}
		out = append(out, crl)
	}
	if len(out) == 0 {
		return nil, errors.New("no X509 CRL block")
	}
	return out, nil
}

// dirSignature summarises names, sizes and times (of link and target) so
// that a poll can tell cheaply whether anything changed.
func (r *Revocations) dirSignature() string {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return "error:" + err.Error()
	}
	var parts []string
	for _, e := range ents {
		p := filepath.Join(r.dir, e.Name())
		s := e.Name()
		if li, err := os.Lstat(p); err == nil {
			s += fmt.Sprintf("|%d|%d", li.Size(), li.ModTime().UnixNano())
		}
		if fi, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("|%d|%d|%d", fi.Size(), fi.ModTime().UnixNano(), inode(fi))
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// Watch polls the directory every interval (default 2s) until ctx ends,
// reloading when anything in it changed and calling onChange (when not nil)
// after a reload that changed the revoked set, and in fail-closed mode also
// when a CRL goes stale, so that the caller can re-check live sessions.
// Polling rather than inotify also catches changes behind symlinks and on
// network file systems.
func (r *Revocations) Watch(ctx context.Context, interval time.Duration, onChange func()) {
	if r == nil || r.dir == "" {
		return
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	r.mu.Lock()
	if r.sig == "" {
		r.sig = r.dirSignature()
	}
	r.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	wasCurrent := r.allCurrent()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sig := r.dirSignature()
		r.mu.Lock()
		dirChanged := sig != r.sig
		r.sig = sig
		r.mu.Unlock()
		changed := false
		if dirChanged {
			var err error
			changed, err = r.Reload()
			if err != nil {
				r.log.Error("reload CRL directory; keeping the previous CRLs", "dir", r.dir, "err", err)
			}
		}
		r.checkStale(false)
		cur := r.allCurrent()
		if cur != wasCurrent && r.failClosed.Load() {
			changed = true
		}
		wasCurrent = cur
		if changed && onChange != nil {
			onChange()
		}
	}
}

func (r *Revocations) allCurrent() bool {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, st := range r.issuers {
		if !st.current(now) {
			return false
		}
	}
	return true
}

// staleRepeat is how often a CRL that stays past its next-update is
// reported again.
const staleRepeat = 10 * time.Minute

// checkStale logs, at error level, every CA whose newest CRL is past its
// next-update: at once when first seen, then every staleRepeat.
func (r *Revocations) checkStale(force bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, st := range r.issuers {
		if !st.hasCRL || st.nextUpdate.IsZero() || now.Before(st.nextUpdate) {
			delete(r.staleLogged, k)
			continue
		}
		if last, ok := r.staleLogged[k]; ok && !force && now.Sub(last) < staleRepeat {
			continue
		}
		r.staleLogged[k] = now
		mode := "fail-open: certificates not listed are still accepted"
		if r.failClosed.Load() {
			mode = "fail-closed: every certificate of this CA is refused"
		}
		r.log.Error("CRL IS PAST ITS NEXT UPDATE; issue a fresh one (sysmon ca crl)",
			"issuer", st.ca.Subject.CommonName, "file", st.source, "next_update", st.nextUpdate.UTC().Format(time.RFC3339),
			"overdue", now.Sub(st.nextUpdate).Round(time.Second).String(), "mode", mode)
	}
}
