package doctor_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/pki"
)

func producerEnv(t *testing.T, f *fixture, port int, over map[string]string) map[string]string {
	t.Helper()
	kv := map[string]string{
		"PRODUCER_ENABLE":     "true",
		"PRODUCER_IP":         "127.0.0.1",
		"PRODUCER_PORT":       fmt.Sprint(port),
		"PRODUCER_USE_TLS":    "true",
		"PRODUCER_CACERTFILE": f.cacert(),
		"PRODUCER_CERTFILE":   f.client,
		"PRODUCER_NODE":       "web1",
		"PRODUCER_SPOOL_DIR":  t.TempDir(),
	}
	for k, v := range over {
		if v == "-" {
			delete(kv, k)
			continue
		}
		kv[k] = v
	}
	return kv
}

func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestProducerGood(t *testing.T) {
	f := newFixture(t)
	port := runConsumer(t, f, true)
	r := check(t, writeEnv(t, producerEnv(t, f, port, nil)))
	if err := r.Err(); err != nil {
		t.Fatalf("good producer file: %v", err)
	}
	if r.Role != "producer" {
		t.Errorf("role %q", r.Role)
	}
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "key matches certificate")
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "chains to the CA")
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "clientAuth")
	mustFind(t, r, doctor.Pass, "PRODUCER_NODE", `"web1"`)
	mustFind(t, r, doctor.Pass, "PRODUCER_IP", "reachable")
	mustFind(t, r, doctor.Pass, "PRODUCER_CERTFILE", "TLS handshake accepted")
}

// TestProducerBroken makes each kind of broken producer file and asserts
// that the report names the key at fault, with a fix, and fails.
func TestProducerBroken(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t) // a second, unrelated CA

	// A key file that is not the certificate's: the .key of another client.
	mismatch := f.issueClient(t, nil, pki.IssueOptions{})
	mismatchKey := mismatch[:len(mismatch)-len(".pem")] + ".key"
	// A client certificate that was revoked.
	revoked := f.issueClient(t, []string{"web1"}, pki.IssueOptions{})
	if err := f.ca.Revoke(revoked, 1); err != nil {
		t.Fatal(err)
	}
	expired := f.issueClient(t, []string{"web1"}, pki.IssueOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	// The server's certificate and key in one file: serverAuth only.
	serverAsClient := pemJoin(t, f.server, f.key)
	port := runConsumer(t, f, true) // after the revocation: it reads the CRL at start

	for _, tc := range []struct {
		name   string
		over   map[string]string
		status doctor.Status
		key    string
		msg    string
	}{
		{"typo", map[string]string{"PRODUCER_PORTT": "8443"}, doctor.Fail, "PRODUCER_PORTT", "did you mean PRODUCER_PORT?"},
		{"bad port", map[string]string{"PRODUCER_PORT": "80800"}, doctor.Fail, "PRODUCER_PORT", "not a number in range"},
		{"bad interval", map[string]string{"PRODUCER_INTERVAL": "often"}, doctor.Fail, "PRODUCER_INTERVAL", "not a valid duration"},
		{"disabled", map[string]string{"PRODUCER_ENABLE": "false"}, doctor.Fail, "PRODUCER_ENABLE", "disabled"},
		{"missing cert", map[string]string{"PRODUCER_CERTFILE": "nowhere.pem"}, doctor.Fail, "PRODUCER_CERTFILE", "cannot read nowhere.pem"},
		{"cert unset", map[string]string{"PRODUCER_CERTFILE": "-"}, doctor.Fail, "PRODUCER_CERTFILE", "required but not set"},
		{"ca not a cert", map[string]string{"PRODUCER_CACERTFILE": f.ca.Path(pki.CAKeyFile)}, doctor.Fail, "PRODUCER_CACERTFILE", ""},
		{"key mismatch", map[string]string{"PRODUCER_KEYFILE": mismatchKey}, doctor.Fail, "PRODUCER_CERTFILE", "does not match"},
		{"other CA client", map[string]string{"PRODUCER_CERTFILE": other.client}, doctor.Fail, "PRODUCER_CERTFILE", "does not chain"},
		{"other CA refused", map[string]string{"PRODUCER_CERTFILE": other.client}, doctor.Fail, "PRODUCER_CERTFILE", "refused this client certificate"},
		{"other CA for server", map[string]string{"PRODUCER_CACERTFILE": other.cacert(), "PRODUCER_CERTFILE": other.client}, doctor.Fail, "PRODUCER_CACERTFILE", "did not issue"},
		{"server name", map[string]string{"PRODUCER_SERVER_NAME": "collector.example.com"}, doctor.Fail, "PRODUCER_SERVER_NAME", "does not name"},
		{"revoked", map[string]string{"PRODUCER_CERTFILE": revoked}, doctor.Fail, "PRODUCER_CERTFILE", "refused"},
		{"expired", map[string]string{"PRODUCER_CERTFILE": expired}, doctor.Fail, "PRODUCER_CERTFILE", "expired on"},
		{"wrong EKU", map[string]string{"PRODUCER_CERTFILE": serverAsClient}, doctor.Fail, "PRODUCER_CERTFILE", "lacks clientAuth"},
		{"wrong node", map[string]string{"PRODUCER_NODE": "db7"}, doctor.Fail, "PRODUCER_NODE", `only for nodes [web1]`},
		{"no consumer", map[string]string{"PRODUCER_PORT": fmt.Sprint(closedPort(t))}, doctor.Fail, "PRODUCER_IP", "cannot connect"},
		{"no TLS", map[string]string{"PRODUCER_USE_TLS": "false"}, doctor.Warn, "PRODUCER_USE_TLS", "unencrypted"},
		{"no TLS refused", map[string]string{"PRODUCER_USE_TLS": "false"}, doctor.Fail, "PRODUCER_USE_TLS", "requires TLS"},
		{"unknown key", map[string]string{"PRODUCER_COLOUR": "blue"}, doctor.Warn, "PRODUCER_COLOUR", "ignored"},
		{"other role key", map[string]string{"CONSUMER_LISTEN_PORT": "1"}, doctor.Fail, "", "keep one role per file"},
		{"spool is a file", map[string]string{"PRODUCER_SPOOL_DIR": f.server}, doctor.Fail, "PRODUCER_SPOOL_DIR", "not a directory"},
		{"not proc", map[string]string{"PRODUCER_PROC_ROOT": "/tmp"}, doctor.Fail, "PRODUCER_PROC_ROOT", "not a proc file system"},
		{"metrics addr", map[string]string{"PRODUCER_METRICS_ADDR": "9464"}, doctor.Fail, "PRODUCER_METRICS_ADDR", "not host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := check(t, writeEnv(t, producerEnv(t, f, port, tc.over)))
			mustFind(t, r, tc.status, tc.key, tc.msg)
			if tc.status == doctor.Fail && r.Err() == nil {
				t.Error("a failed check but Err is nil")
			}
		})
	}
}

func TestProducerExpiringSoonWarnsOnly(t *testing.T) {
	f := newFixture(t)
	port := runConsumer(t, f, true)
	soon := f.issueClient(t, []string{"web1"}, pki.IssueOptions{NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	r := check(t, writeEnv(t, producerEnv(t, f, port, map[string]string{"PRODUCER_CERTFILE": soon})))
	mustFind(t, r, doctor.Warn, "PRODUCER_CERTFILE", "expires in 9 days")
	if err := r.Err(); err != nil {
		t.Errorf("a warning failed the check: %v", err)
	}
}

func TestProducerPlainConsumerNeedsTLSOff(t *testing.T) {
	f := newFixture(t)
	port := runConsumer(t, f, false)
	r := check(t, writeEnv(t, producerEnv(t, f, port, nil)))
	mustFind(t, r, doctor.Fail, "PRODUCER_USE_TLS", "does not speak TLS")

	r = check(t, writeEnv(t, producerEnv(t, f, port, map[string]string{"PRODUCER_USE_TLS": "false"})))
	mustFind(t, r, doctor.Pass, "PRODUCER_IP", "plain ws://")
	if r.Err() != nil {
		t.Errorf("plain consumer and producer: %v", r.Err())
	}
}

func TestUncheckableFiles(t *testing.T) {
	r := check(t, "/nonexistent/producer.env")
	var ce interface{ Hint() string }
	if err := r.Err(); err == nil || !errors.As(err, &ce) {
		t.Fatalf("missing file: %v", err)
	}
	var fe *doctor.FailedError
	if errors.As(r.Err(), &fe) {
		t.Error("a missing file is a configuration error, not failed checks")
	}
	empty := writeEnv(t, map[string]string{"EDITOR": "vi"})
	mustFind(t, check(t, empty), doctor.Fail, "", "not a sysmon env file")
}

// pemJoin writes the concatenation of files into a new 0600 file.
func pemJoin(t *testing.T, files ...string) string {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	p := t.TempDir() + "/joined.pem"
	if err := os.WriteFile(p, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
