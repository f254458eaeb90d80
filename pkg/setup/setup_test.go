package setup

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pki"
)

func newCA(t testing.TB, dir string) *pki.CA {
	t.Helper()
	ca, err := pki.Init(dir, pki.InitOptions{Curve: "P-256"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func readEnv(t testing.TB, path string) map[string]string {
	t.Helper()
	m, err := config.ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(string) error
		ok    []string
		bad   []string
	}{
		{"ip", checkIP, []string{"0.0.0.0", "::", "127.0.0.1"}, []string{"", "localhost", "1.2.3"}},
		{"port", checkPort, []string{"1", "8443", "65535"}, []string{"", "0", "65536", "http"}},
		{"host", checkHost, []string{"collector.example.com", "10.0.0.1", "::1"}, []string{"", "a b", "a/b", "host:80"}},
		{"hosts", checkHosts, []string{"a", "a, b,,127.0.0.1"}, []string{"", " , ", "a,b c"}},
		{"node", checkNode, []string{"web1"}, []string{"", "web 1", "web/1", "web\t1"}},
		{"email", checkEmail, []string{"ops@example.com"}, []string{"", "@x", "ops@", "o ps@x", "a/b@x"}},
		{"interval", checkInterval, []string{"2s", "100ms", "1m", "2.5"}, []string{"", "fast", "10ms", "0"}},
		{"db url", checkDBURL, []string{"", "postgres://u:p@h:5432/d", "postgresql://h/d", "host=h dbname=d"}, []string{"mysql://h/d", "db"}},
		{"host:port", checkHostPortOrEmpty, []string{"", "127.0.0.1:9464", "[::1]:9464"}, []string{"127.0.0.1", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range tc.ok {
				if err := tc.check(v); err != nil {
					t.Errorf("%q refused: %v", v, err)
				}
			}
			for _, v := range tc.bad {
				if tc.check(v) == nil {
					t.Errorf("%q accepted", v)
				}
			}
		})
	}
}

func TestDefaultHosts(t *testing.T) {
	if got := defaultHosts("10.1.2.3"); !slices.Equal(got, []string{"10.1.2.3", "localhost", "127.0.0.1"}) {
		t.Errorf("specific address: %v", got)
	}
	if got := defaultHosts("127.0.0.1"); !slices.Equal(got, []string{"127.0.0.1", "localhost"}) {
		t.Errorf("loopback named twice or lost: %v", got)
	}
	got := defaultHosts("0.0.0.0")
	if slices.Contains(got, "0.0.0.0") || !slices.Contains(got, "localhost") || !slices.Contains(got, "127.0.0.1") {
		t.Errorf("unspecified address: %v", got)
	}
	if h := hostName(); h != "localhost" && got[0] != h {
		t.Errorf("unspecified address does not start with the host name %q: %v", h, got)
	}
}

func TestAsk(t *testing.T) {
	var out bytes.Buffer
	p := &prompter{in: bufio.NewReader(strings.NewReader("99999\n\n-\n7443")), out: &out}
	q := question{label: "Port", help: "a port", def: "8443", check: checkPort}
	if v, err := p.ask(q); err != nil || v != "8443" {
		t.Fatalf("refused then default: %q, %v", v, err)
	}
	if !strings.Contains(out.String(), "\na port\nPort [8443]:   ✗ \"99999\" is not a port") {
		t.Errorf("prompt and refusal:\n%s", out.String())
	}
	if v, err := p.ask(question{label: "Dir", def: "x"}); err != nil || v != "" {
		t.Errorf("- for empty: %q, %v", v, err)
	}
	// A last line without a newline is still an answer.
	if v, err := p.ask(q); err != nil || v != "7443" {
		t.Errorf("unterminated last line: %q, %v", v, err)
	}
	var ie *InputError
	if _, err := p.ask(q); !errors.As(err, &ie) || !errors.Is(err, errInputEnded) {
		t.Errorf("ended input: %v", err)
	}

	p = &prompter{in: bufio.NewReader(strings.NewReader(strings.Repeat("x\n", 6))), out: &out}
	if _, err := p.ask(q); !errors.As(err, &ie) || !strings.Contains(err.Error(), "Port: no valid answer after 5 tries") {
		t.Errorf("five bad answers: %v", err)
	}
}

func TestRunFromValues(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "consumer.env")
	var stdout bytes.Buffer
	values := map[string]string{"CONSUMER_LISTEN_PORT": "9443", "CONSUMER_CACERTFILE": "rel/ca.pem"}
	err := Run(Options{Role: config.RoleConsumer, Out: out, Values: values, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	if want := "wrote " + out + "\nnext: sysmon setup check " + out + ", then sysmon consume --env " + out + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	env := readEnv(t, out)
	abs, _ := filepath.Abs("rel/ca.pem")
	if env["CONSUMER_LISTEN_PORT"] != "9443" || env["CONSUMER_CACERTFILE"] != abs {
		t.Errorf("env: %v", env)
	}
	if values["CONSUMER_CACERTFILE"] != "rel/ca.pem" {
		t.Error("Run changed the caller's map")
	}

	// A bad value is an InputError naming the key, and nothing is written.
	bad := filepath.Join(dir, "bad.env")
	err = Run(Options{Role: config.RoleProducer, Out: bad, Values: map[string]string{"PRODUCER_PORT": "80800"}, Stdout: &stdout})
	var ie *InputError
	var ce *config.Error
	if !errors.As(err, &ie) || !errors.As(err, &ce) || ce.Key != "PRODUCER_PORT" || ce.File != "" {
		t.Errorf("bad port: %v", err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("wrote a file for a bad value")
	}

	// A directory without a CA is a CAError that still says the file is missing.
	err = Run(Options{Role: config.RoleConsumer, Out: bad, CADir: filepath.Join(dir, "nothing"), Values: map[string]string{}, Stdout: &stdout})
	var cae *CAError
	if !errors.As(err, &cae) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA: %v", err)
	}
}

func TestRunMints(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "certs")
	ca := newCA(t, caDir)
	var stdout bytes.Buffer
	cons := filepath.Join(dir, "consumer.env")
	o := Options{Role: config.RoleConsumer, Out: cons, CADir: caDir, Hosts: []string{"collector.example.com"},
		Values: map[string]string{"CONSUMER_LISTEN_IP": "127.0.0.1"}, Stdout: &stdout}
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "issued server certificate "+ca.Path(pki.ServerCertFile)+" for collector.example.com\n") {
		t.Errorf("stdout: %s", stdout.String())
	}
	env := readEnv(t, cons)
	if env["CONSUMER_CERTFILE"] != ca.Path(pki.ServerCertFile) || env["CONSUMER_KEYFILE"] != ca.Path(pki.ServerKeyFile) ||
		env["CONSUMER_CACERTFILE"] != ca.Path(pki.CACertFile) || env["CONSUMER_CRLDIR"] != ca.Path(pki.CRLDir) {
		t.Errorf("certificate keys: %v", env)
	}

	// Again with other names: the certificate is reused, with a warning for
	// the names it lacks.
	stdout.Reset()
	o.Hosts = []string{"collector.example.com", "other.example.com"}
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "using the existing server certificate") || !strings.Contains(stdout.String(), "  ! it does not name other.example.com;") {
		t.Errorf("reuse: %s", stdout.String())
	}

	// The producer's node defaults the e-mail and binds the certificate.
	stdout.Reset()
	prod := filepath.Join(dir, "producer.env")
	if err := Run(Options{Role: config.RoleProducer, Out: prod, CADir: caDir, Values: map[string]string{"PRODUCER_NODE": "web7"}, Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	penv := readEnv(t, prod)
	pair, err := pki.LoadKeyPair(penv["PRODUCER_CERTFILE"], "")
	if err != nil {
		t.Fatal(err)
	}
	if nodes := pki.NodesAllowed(pair.Leaf); !slices.Equal(nodes, []string{"web7"}) || !strings.Contains(penv["PRODUCER_CERTFILE"], "sysmon@web7_") {
		t.Errorf("client certificate %s bound to %v", penv["PRODUCER_CERTFILE"], nodes)
	}
	if !strings.Contains(stdout.String(), "issued client certificate "+penv["PRODUCER_CERTFILE"]+" for node web7\n") {
		t.Errorf("stdout: %s", stdout.String())
	}

	// A revoked certificate is never handed out again: setup mints anew.
	if err := ca.Revoke(penv["PRODUCER_CERTFILE"], 1); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := Run(Options{Role: config.RoleProducer, Out: prod, CADir: caDir, Values: map[string]string{"PRODUCER_NODE": "web7"}, Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "is revoked: minting a new one") {
		t.Errorf("stdout: %s", stdout.String())
	}
	again, err := pki.LoadKeyPair(readEnv(t, prod)["PRODUCER_CERTFILE"], "")
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(pair.Leaf.SerialNumber) == 0 {
		t.Error("the revoked certificate was reused")
	}
	if revoked, _ := ca.IsRevoked(readEnv(t, prod)["PRODUCER_CERTFILE"]); revoked {
		t.Error("the new certificate is recorded as revoked")
	}
}

func TestRunAsks(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	answers := strings.Join([]string{
		"127.0.0.1",            // listen address
		"",                     // port: 8443 from the flag, offered as default
		"-",                    // no CA directory
		"/etc/sysmon/ca.pem",   // CA certificate
		"",                     // server certificate: default
		"",                     // server key: default
		"-",                    // no CRL directory
		"",                     // database: none
		"",                     // metrics: off
		"nodir/x.env", "c.env", // out: refused, then accepted
	}, "\n") + "\n"
	var stdout bytes.Buffer
	err := Run(Options{Role: config.RoleConsumer, Out: "consumer.env", Values: map[string]string{"CONSUMER_LISTEN_PORT": "9443"},
		Ask: true, Stdin: strings.NewReader(answers), Stdout: &stdout})
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	for _, want := range []string{"Listen port [9443]: ", "CA directory: ", "  ! /etc/sysmon/ca.pem does not exist yet", "Write to [consumer.env]: ", "✗ directory nodir does not exist", "wrote c.env\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	env := readEnv(t, "c.env")
	abs, _ := filepath.Abs("certs/certs/server.key")
	for k, v := range map[string]string{"CONSUMER_LISTEN_IP": "127.0.0.1", "CONSUMER_LISTEN_PORT": "9443", "CONSUMER_CACERTFILE": "/etc/sysmon/ca.pem",
		"CONSUMER_KEYFILE": abs, "CONSUMER_CRLDIR": "", "CONSUMER_DB_URL": ""} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}
