package pki

import (
	"path/filepath"
	"testing"
)

// TestSecondClientSameEmailSameDay: a second host's certificate for the same
// operator e-mail on the same day gets its own files instead of failing.
func TestSecondClientSameEmailSameDay(t *testing.T) {
	ca, err := Init(t.TempDir(), InitOptions{CN: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := ca.IssueClient("web1", "ops@example.com", []string{"web1"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ca.IssueClient("web2", "ops@example.com", []string{"web2"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p1 == p2 || filepath.Dir(p1) != filepath.Dir(p2) {
		t.Fatalf("paths %s and %s", p1, p2)
	}
	for _, p := range []string{p1, p2} {
		if _, err := LoadKeyPair(p, ""); err != nil {
			t.Error(err)
		}
	}
	if _, err := ca.IssueClient("web2", "ops@example.com", nil, IssueOptions{}); err == nil {
		t.Error("a third certificate of the same name, e-mail and day overwrote the second")
	}
	// --force replaces web2's files, never web1's.
	p3, err := ca.IssueClient("web2", "ops@example.com", []string{"web2"}, IssueOptions{Force: true})
	if err != nil || p3 != p2 {
		t.Fatalf("forced reissue wrote %s (%v), want %s", p3, err, p2)
	}
	kp, err := LoadKeyPair(p1, "")
	if err != nil || kp.Leaf.Subject.CommonName != "web1" {
		t.Errorf("web1's file now holds %v (%v)", kp.Leaf.Subject.CommonName, err)
	}
}
