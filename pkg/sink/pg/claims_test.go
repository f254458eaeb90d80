package pg

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/pgtest"
)

// testCA signs client certificates the way a real CA would, so that
// ClaimNode sees parsed subjects and issuers, not hand-filled structs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"sysmon"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

var serialSeq struct {
	sync.Mutex
	n int64
}

// client issues a client certificate for cn with a fresh key and serial.
func (ca *testCA) client(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serialSeq.Lock()
	serialSeq.n++
	serial := big.NewInt(1000 + serialSeq.n)
	serialSeq.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sysmon"}, OrganizationalUnit: []string{"client"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestClaimNode walks one node through its owners: the first certificate
// takes it, the same and a renewed certificate keep it, a different name
// or the same name from another CA is refused with an events row, and a
// node created unowned by OpenStream goes to its first claimant.
func TestClaimNode(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{})
	ctx := context.Background()
	ca := newTestCA(t, "claims CA")
	alice, bob := ca.client(t, "alice"), ca.client(t, "bob")

	if err := s.ClaimNode(ctx, "n1", alice); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	var owner, issuer, serial string
	if err := s.Pool().QueryRow(ctx, `SELECT owner_subject, owner_issuer, owner_serial FROM node WHERE node = 'n1'`).Scan(&owner, &issuer, &serial); err != nil {
		t.Fatal(err)
	}
	if owner != alice.Subject.String() || issuer != ca.cert.Subject.String() || serial != alice.SerialNumber.Text(16) {
		t.Fatalf("owner = %q, %q, %q; want alice's subject, the CA and her serial", owner, issuer, serial)
	}
	if err := s.ClaimNode(ctx, "n1", alice); err != nil {
		t.Fatalf("owner claiming again: %v", err)
	}
	renewed := ca.client(t, "alice")
	if err := s.ClaimNode(ctx, "n1", renewed); err != nil {
		t.Fatalf("renewed certificate (same subject, same CA): %v", err)
	}
	if n := count(t, s, `SELECT count(*) FROM node WHERE node = 'n1' AND owner_serial = $1`, renewed.SerialNumber.Text(16)); n != 1 {
		t.Errorf("owner_serial not the renewed certificate's")
	}

	err := s.ClaimNode(ctx, "n1", bob)
	if !errors.Is(err, ErrNodeOwned) || !strings.Contains(err.Error(), `"n1"`) || !strings.Contains(err.Error(), "another certificate") {
		t.Fatalf("bob claiming alice's node: %v, want ErrNodeOwned naming the node", err)
	}
	var detail string
	if err := s.Pool().QueryRow(ctx, `SELECT detail FROM events WHERE kind = $1 AND node = 'n1' AND subject = 'n1'`, EventClaimRefused).Scan(&detail); err != nil {
		t.Fatalf("events row of the refusal: %v", err)
	}
	for _, want := range []string{bob.Subject.String(), bob.SerialNumber.Text(16), alice.Subject.String()} {
		if !strings.Contains(detail, want) {
			t.Errorf("event detail %q does not contain %q", detail, want)
		}
	}
	// A refused producer retrying does not flood events.
	if err := s.ClaimNode(ctx, "n1", bob); !errors.Is(err, ErrNodeOwned) {
		t.Fatalf("second refusal: %v", err)
	}
	if n := count(t, s, `SELECT count(*) FROM events WHERE kind = $1`, EventClaimRefused); n != 1 {
		t.Errorf("%d events rows for two refusals within a minute, want 1", n)
	}

	// Alice's name under another CA is another owner.
	other := newTestCA(t, "other CA").client(t, "alice")
	if err := s.ClaimNode(ctx, "n1", other); !errors.Is(err, ErrNodeOwned) {
		t.Fatalf("same subject from another CA: %v, want refused", err)
	}

	// OpenStream (a producer bound by SAN, or plain ws://) leaves the node
	// unowned and keeps the owner of an owned one.
	if _, err := s.OpenStream(ctx, hello("n2", "sp")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM node WHERE node = 'n2' AND owner_subject IS NULL`); n != 1 {
		t.Fatal("OpenStream gave n2 an owner")
	}
	if err := s.ClaimNode(ctx, "n2", bob); err != nil {
		t.Fatalf("claiming an unowned node: %v", err)
	}
	if _, err := s.OpenStream(ctx, hello("n2", "sp")); err != nil {
		t.Fatal(err)
	}
	write(t, s, hello("n2", "sp"), batch(1, time.Now(), 1, 2))
	if n := count(t, s, `SELECT count(*) FROM node WHERE node = 'n2' AND owner_subject = $1`, bob.Subject.String()); n != 1 {
		t.Fatal("OpenStream or WriteBatch lost n2's owner")
	}
	if err := s.ClaimNode(ctx, "n2", alice); !errors.Is(err, ErrNodeOwned) {
		t.Fatalf("alice claiming bob's node: %v", err)
	}
}

// TestClaimNodeRace has many certificates claim one node at once through
// two stores on one database (two consumers): exactly one wins.
func TestClaimNodeRace(t *testing.T) {
	url := pgtest.URL(t)
	stores := []*Store{open(t, url, Options{}), open(t, url, Options{})}
	ca := newTestCA(t, "race CA")
	const n = 12
	certs := make([]*x509.Certificate, n)
	for i := range certs {
		certs[i] = ca.client(t, "contender-"+string(rune('a'+i)))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = stores[i%2].ClaimNode(context.Background(), "contested", certs[i])
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, ErrNodeOwned):
			t.Errorf("contender %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d certificates own the node, want 1", winners)
	}
	if got := count(t, stores[0], `SELECT count(*) FROM events WHERE kind = $1`, EventClaimRefused); got != n-1 {
		t.Errorf("%d refusal events, want %d", got, n-1)
	}
}

// TestOwnerMigrationIdempotent re-runs the owner migration on a migrated
// schema, as a schema prepared by hand might: nothing fails.
func TestOwnerMigrationIdempotent(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{})
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version == 2 {
			if _, err := s.Pool().Exec(context.Background(), m.sql); err != nil {
				t.Fatalf("%s again: %v", m.name, err)
			}
			return
		}
	}
	t.Fatal("no migration 2")
}
