package doctor_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/sink/jsonl"
	"github.com/sysmon/sysmon/pkg/transport"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a CA directory with a server certificate and a client
// certificate bound to node "web1", as `sysmon ca` lays them out.
type fixture struct {
	dir    string
	ca     *pki.CA
	server string // certs/server.crt
	key    string // certs/server.key
	client string // client_keys/...pem
}

var seq int

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	ca, err := pki.Init(dir, pki.InitOptions{Curve: "P-256"})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, pki.IssueOptions{Curve: "P-256"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, ca: ca, server: crt, key: key}
	f.client = f.issueClient(t, []string{"web1"}, pki.IssueOptions{})
	return f
}

func (f *fixture) issueClient(t *testing.T, nodes []string, o pki.IssueOptions) string {
	t.Helper()
	seq++
	o.Curve = "P-256"
	p, err := f.ca.IssueClient("web1", fmt.Sprintf("ops%d@example.com", seq), nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) cacert() string { return f.ca.Path(pki.CACertFile) }

// runConsumer serves a real transport server with the fixture's server
// certificate (TLS when tls is set) on a loopback port and returns the port.
func runConsumer(t *testing.T, f *fixture, useTLS bool) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(transport.ServerOptions{Sink: jsonl.New(io.Discard), Logger: slog.New(slog.DiscardHandler)})
	var conf *tls.Config
	if useTLS {
		pair, err := pki.LoadKeyPair(f.server, f.key)
		if err != nil {
			t.Fatal(err)
		}
		pool, cas, err := pki.LoadCAPool(f.cacert())
		if err != nil {
			t.Fatal(err)
		}
		rev, err := pki.NewRevocations(f.ca.Path(pki.CRLDir), cas, nil)
		if err != nil {
			t.Fatal(err)
		}
		conf = pki.ServerTLSConfig(pair, pool, rev)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, conf) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// writeEnv writes an env file of KEY=value lines (sorted) into a temp dir.
func writeEnv(t *testing.T, kv map[string]string) string {
	t.Helper()
	var keys []string
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, kv[k])
	}
	p := filepath.Join(t.TempDir(), "test.env")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) (string, bool) { return "", false }

func check(t *testing.T, path string) *doctor.Report {
	t.Helper()
	r := doctor.Check(context.Background(), path, doctor.Options{LookupEnv: noEnv, Timeout: 3 * time.Second})
	var b strings.Builder
	r.Write(&b)
	t.Log("\n" + b.String())
	return r
}

// find returns the first result with status s whose key is key and whose
// message contains sub.
func find(r *doctor.Report, s doctor.Status, key, sub string) (doctor.Result, bool) {
	for _, x := range r.Results {
		if x.Status == s && x.Key == key && strings.Contains(x.Msg, sub) {
			return x, true
		}
	}
	return doctor.Result{}, false
}

func mustFind(t *testing.T, r *doctor.Report, s doctor.Status, key, sub string) doctor.Result {
	t.Helper()
	x, ok := find(r, s, key, sub)
	if !ok {
		t.Fatalf("no %s result for %s containing %q", s.Mark(), key, sub)
	}
	if s != doctor.Pass && x.Fix == "" {
		t.Errorf("%s has no fix", x)
	}
	return x
}
