package pki

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatchPicksUpRevocation: a revocation written by the CA reaches a
// watching consumer within a few poll intervals, and onChange fires.
func TestWatchPicksUpRevocation(t *testing.T) {
	ca := newTestCA(t)
	_, cas := caPool(t, ca)
	cli, cliPEM := clientPair(t, ca, IssueOptions{})
	rev, err := NewRevocations(ca.Path(CRLDir), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.IsRevoked(cli.Leaf.SerialNumber) {
		t.Fatal("revoked before revocation")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var changes atomic.Int32
	changed := make(chan struct{}, 10)
	go func() {
		defer close(done)
		rev.Watch(ctx, 20*time.Millisecond, func() {
			changes.Add(1)
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(50 * time.Millisecond) // nothing changed: no callback
	if changes.Load() != 0 {
		t.Fatal("onChange without a change")
	}
	start := time.Now()
	if err := ca.Revoke(cliPEM, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no onChange within 5s of the revocation")
	}
	t.Logf("revocation seen after %v", time.Since(start))
	if err := rev.Check(cli.Leaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v", err)
	}

	// A torn or garbage write of the CRL keeps what was known.
	if err := os.WriteFile(ca.Path(CRLFile), []byte("-----BEGIN X509 CRL-----\ngarbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rev.Reload(); err != nil {
		t.Fatal(err)
	}
	if !rev.IsRevoked(cli.Leaf.SerialNumber) {
		t.Fatal("a broken CRL file un-revoked a certificate")
	}
	// Removing the CRL does drop it: the operator's decision.
	for _, f := range []string{CRLFile} {
		os.Remove(ca.Path(f))
	}
	if _, err := rev.Reload(); err != nil {
		t.Fatal(err)
	}
	if rev.IsRevoked(cli.Leaf.SerialNumber) {
		t.Fatal("CRL removed but serial still revoked")
	}
}

// TestStaleCRL: past next-update the CRL is still used; fail-closed then
// refuses every certificate of the CA, and Watch reports the flip.
func TestStaleCRL(t *testing.T) {
	ca := newTestCA(t)
	_, cas := caPool(t, ca)
	cli, _ := clientPair(t, ca, IssueOptions{})
	if err := ca.WriteCRL(time.Hour); err != nil {
		t.Fatal(err)
	}
	rev, err := NewRevocations(ca.Path(CRLDir), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	rev.now = func() time.Time { return time.Unix(0, clock.Load()) }

	if err := rev.Check(cli.Leaf); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(2 * time.Hour))
	if err := rev.Check(cli.Leaf); err != nil {
		t.Fatalf("fail-open stale Check = %v", err)
	}
	rev.SetFailClosed(true)
	if err := rev.Check(cli.Leaf); !errors.Is(err, ErrCRLStale) {
		t.Fatalf("fail-closed stale Check = %v", err)
	}
	if !rev.IsRevoked(cli.Leaf.SerialNumber) {
		t.Fatal("fail-closed stale IsRevoked = false")
	}
	// Watch: the clock moves back into validity -> onChange.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	changed := make(chan struct{}, 10)
	go func() {
		defer close(done)
		rev.Watch(ctx, 10*time.Millisecond, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(30 * time.Millisecond)
	clock.Add(int64(-2 * time.Hour))
	select {
	case <-changed:
	case <-time.After(3 * time.Second):
		t.Fatal("no onChange when the CRL became current")
	}
	if err := rev.Check(cli.Leaf); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationsEdges(t *testing.T) {
	var nilRev *Revocations
	if nilRev.IsRevoked(big.NewInt(1)) || nilRev.Check(nil) != nil {
		t.Fatal("nil Revocations revoked something")
	}
	nilRev.Watch(context.Background(), time.Millisecond, nil) // returns at once
	empty, err := NewRevocations("", nil, nil)
	if err != nil || empty.IsRevoked(big.NewInt(1)) {
		t.Fatal(err)
	}
	if _, err := NewRevocations(filepath.Join(t.TempDir(), "missing"), nil, nil); err == nil {
		t.Fatal("missing CRL directory accepted")
	}
	// Files that are not CRLs are skipped, not fatal.
	ca := newTestCA(t)
	_, cas := caPool(t, ca)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cacert.pem"), mustRead(t, ca.Path(CACertFile)), 0o644)
	os.WriteFile(filepath.Join(dir, "junk.crl"), []byte("not a crl"), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.crl"), 0o755)
	if _, err := NewRevocations(dir, cas, testLogger(t)); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWatchSeesChangesBeforeItStarts: a CRL written between NewRevocations
// and the start of Watch (the consumer opens its database in between, which
// takes seconds) is picked up at Watch's first poll, not left unseen until
// the directory happens to change again.
func TestWatchSeesChangesBeforeItStarts(t *testing.T) {
	ca := newTestCA(t)
	_, cas := caPool(t, ca)
	cli, cliPEM := clientPair(t, ca, IssueOptions{})
	rev, err := NewRevocations(ca.Path(CRLDir), cas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(cliPEM, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	changed := make(chan struct{}, 1)
	go func() {
		defer close(done)
		rev.Watch(ctx, 20*time.Millisecond, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-changed:
	case <-time.After(2 * time.Second):
		t.Fatal("a revocation written before Watch started was never loaded")
	}
	if err := rev.Check(cli.Leaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want revoked", err)
	}
}

// TestStaleReportNamesTheModeInForce: the loud report of a CRL that is
// already stale when loaded says fail-closed when the consumer runs
// fail-closed, and SetFailClosed repeats it when the mode changes.
func TestStaleReportNamesTheModeInForce(t *testing.T) {
	ca := newTestCA(t)
	_, cas := caPool(t, ca)
	if err := ca.WriteCRL(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if _, err := NewRevocationsWith(ca.Path(CRLDir), cas, RevocationOptions{Logger: log, FailClosed: true}); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "PAST ITS NEXT UPDATE") || !strings.Contains(out, "fail-closed") || strings.Contains(out, "fail-open") {
		t.Fatalf("fail-closed from the start reported:\n%s", out)
	}

	buf.Reset()
	rev, err := NewRevocations(ca.Path(CRLDir), cas, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "fail-open") {
		t.Fatalf("default mode reported:\n%s", buf.String())
	}
	buf.Reset()
	rev.SetFailClosed(true)
	if !strings.Contains(buf.String(), "fail-closed") {
		t.Fatalf("after SetFailClosed(true):\n%s", buf.String())
	}
	buf.Reset()
	rev.SetFailClosed(true) // no change: no repeat
	if buf.Len() != 0 {
		t.Fatalf("SetFailClosed without a change logged:\n%s", buf.String())
	}
}
