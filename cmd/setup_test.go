package cmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pki"
)

// runCLIIn is runCLI with stdin.
func runCLIIn(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetIn(stdin)
	root.SetArgs(args)
	code = report(&errb, root.Execute())
	return code, out.String(), errb.String()
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	m, err := config.ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestCA(t *testing.T, dir string) *pki.CA {
	t.Helper()
	ca, err := pki.Init(dir, pki.InitOptions{Curve: "P-256"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestSetupFromFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "consumer.env")
	code, stdout, stderr := runCLIIn(t, strings.NewReader(""), "setup", "consumer",
		"--listen-ip", "127.0.0.1", "--port", "9443", "--db-url", "postgres://sm:secret@db:5432/sm", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "?") || strings.Contains(stdout, "[8443]") {
		t.Errorf("setup with flags asked something:\n%s", stdout)
	}
	env := readEnv(t, out)
	if env["CONSUMER_LISTEN_IP"] != "127.0.0.1" || env["CONSUMER_LISTEN_PORT"] != "9443" || env["CONSUMER_DB_URL"] != "postgres://sm:secret@db:5432/sm" {
		t.Errorf("env file: %v", env)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file holding a password: mode %v, %v", fi.Mode().Perm(), err)
	}
	body, _ := os.ReadFile(out)
	// Every key of the role is there with its comment, unset ones commented
	// out at their defaults.
	for _, k := range config.KeysFor(config.RoleConsumer) {
		if !strings.Contains(string(body), k.Name+"=") || !strings.Contains(string(body), "# "+k.Doc) {
			t.Errorf("%s or its comment missing", k.Name)
		}
	}

	// Running again keeps the previous file.
	code, stdout, stderr = runCLIIn(t, strings.NewReader(""), "setup", "consumer", "--port", "9444", "--out", out)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	baks, _ := filepath.Glob(out + ".bak-*")
	if len(baks) != 1 || !strings.Contains(stdout, "kept the previous file as "+baks[0]) {
		t.Fatalf("backup: %v\n%s", baks, stdout)
	}
	if readEnv(t, baks[0])["CONSUMER_LISTEN_PORT"] != "9443" || readEnv(t, out)["CONSUMER_LISTEN_PORT"] != "9444" {
		t.Error("backup or new file has the wrong content")
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o644 {
		t.Errorf("file without a password: mode %v", fi.Mode().Perm())
	}

	// A bad value is refused before anything is written, naming the key.
	code, _, stderr = runCLIIn(t, strings.NewReader(""), "setup", "producer", "--port", "80800", "--out", filepath.Join(dir, "p.env"))
	if code != 2 || !strings.Contains(stderr, "PRODUCER_PORT") {
		t.Errorf("bad port: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.env")); err == nil {
		t.Error("a file was written for a bad value")
	}
	// ... and before a certificate is minted for it.
	caDir := filepath.Join(dir, "certs")
	newTestCA(t, caDir)
	code, _, stderr = runCLIIn(t, strings.NewReader(""), "setup", "producer", "--interval", "fast", "--ca-dir", caDir, "--out", filepath.Join(dir, "p.env"))
	if code != 2 || !strings.Contains(stderr, "PRODUCER_INTERVAL") {
		t.Errorf("bad interval: exit %d: %s", code, stderr)
	}
	if minted, _ := filepath.Glob(filepath.Join(caDir, "client_keys", "*")); len(minted) != 0 {
		t.Errorf("minted %v for a refused setup", minted)
	}
	// A CA directory without a CA is a usage error with a hint.
	code, _, stderr = runCLIIn(t, strings.NewReader(""), "setup", "consumer", "--ca-dir", filepath.Join(dir, "nothing"), "--out", filepath.Join(dir, "c.env"))
	if code != 2 || !strings.Contains(stderr, "sysmon ca init") {
		t.Errorf("missing CA: exit %d: %s", code, stderr)
	}
}

// TestSetupMintsCertificates runs both roles with --ca-dir and checks the
// result with the same checks `setup check` runs, the producer against the
// real consumer started from the consumer's file.
func TestSetupMintsCertificates(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "certs")
	newTestCA(t, caDir)
	cons, prod := filepath.Join(dir, "consumer.env"), filepath.Join(dir, "producer.env")
	port := freeTCPPort(t)
	code, stdout, stderr := runCLIIn(t, nil, "setup", "consumer", "--ca-dir", caDir, "--listen-ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--host", "collector.example.com,127.0.0.1", "--data-dir", filepath.Join(dir, "pgdata"), "--out", cons)
	if code != 0 {
		t.Fatalf("setup consumer: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "issued server certificate") {
		t.Errorf("stdout: %s", stdout)
	}
	env := readEnv(t, cons)
	if env["CONSUMER_CERTFILE"] != filepath.Join(caDir, "certs", "server.crt") || env["CONSUMER_KEYFILE"] != filepath.Join(caDir, "certs", "server.key") ||
		env["CONSUMER_CACERTFILE"] != filepath.Join(caDir, "certs", "cacert.pem") || env["CONSUMER_CRLDIR"] != filepath.Join(caDir, "crl") {
		t.Errorf("certificate keys: %v", env)
	}
	pair, err := pki.LoadKeyPair(env["CONSUMER_CERTFILE"], env["CONSUMER_KEYFILE"])
	if err != nil {
		t.Fatal(err)
	}
	if got := pair.Leaf.DNSNames; len(got) != 1 || got[0] != "collector.example.com" {
		t.Errorf("server certificate names %v", got)
	}

	// Again without --force: the server certificate is reused, not refused.
	code, stdout, stderr = runCLIIn(t, nil, "setup", "consumer", "--ca-dir", caDir, "--listen-ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--data-dir", filepath.Join(dir, "pgdata"), "--out", cons)
	if code != 0 || !strings.Contains(stdout, "using the existing server certificate") {
		t.Fatalf("second setup consumer: exit %d: %s%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLIIn(t, nil, "setup", "producer", "--ca-dir", caDir, "--consumer-ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--node", "web7", "--spool-dir", filepath.Join(dir, "spool"), "--out", prod)
	if code != 0 || !strings.Contains(stdout, "issued client certificate") {
		t.Fatalf("setup producer: exit %d: %s%s", code, stdout, stderr)
	}
	penv := readEnv(t, prod)
	if !strings.HasPrefix(penv["PRODUCER_CERTFILE"], filepath.Join(caDir, "client_keys", "sysmon@web7_")) || penv["PRODUCER_NODE"] != "web7" {
		t.Errorf("producer env: %v", penv)
	}
	pp, err := pki.LoadKeyPair(penv["PRODUCER_CERTFILE"], "")
	if err != nil {
		t.Fatal(err)
	}
	if nodes := pki.NodesAllowed(pp.Leaf); len(nodes) != 1 || nodes[0] != "web7" {
		t.Errorf("client certificate bound to %v", nodes)
	}

	// The consumer's file checks clean (its database is the embedded or
	// original one, so only the lines up to the database matter here).
	code, stdout, _ = runCLIIn(t, nil, "setup", "check", cons, "--timeout", "2s")
	for _, want := range []string{"✓ CONSUMER_CERTFILE: key matches certificate", "✓ CONSUMER_CERTFILE: certificate chains", "✓ CONSUMER_CERTFILE: extended key usage includes serverAuth", "✓ CONSUMER_CRLDIR"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("consumer check lacks %q (exit %d):\n%s", want, code, stdout)
		}
	}

	// The producer's check fails while no consumer runs ...
	code, stdout, stderr = runCLIIn(t, nil, "setup", "--check", prod)
	if code != 1 || !strings.Contains(stdout, "✗ PRODUCER_IP: cannot connect") || !strings.Contains(stderr, "1 of") {
		t.Fatalf("check without consumer: exit %d\n%s%s", code, stdout, stderr)
	}
	// ... and passes with the real consumer running on the consumer's file.
	stop := startConsumeJSONL(t, cons)
	defer stop()
	code, stdout, stderr = runCLIIn(t, nil, "setup", "--check", prod)
	if code != 0 || !strings.Contains(stdout, "✓ PRODUCER_CERTFILE: TLS handshake accepted") {
		t.Fatalf("check with consumer: exit %d\n%s%s", code, stdout, stderr)
	}
}

// startConsumeJSONL runs `sysmon consume --output jsonl` in-process.
func startConsumeJSONL(t *testing.T, env string) func() {
	t.Helper()
	var out, errb syncBuf
	root := newRootCmd(&out, &errb)
	root.SetArgs([]string{"consume", "--env", env, "--output", "jsonl", "--log-format", "json"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { root.ExecuteContext(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errb.String(), "consumer listening") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("consumer did not start:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { cancel(); <-done }
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSetupInteractiveFromPipe(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	newTestCA(t, filepath.Join(dir, "certs"))
	// One answer per question; empty lines take the defaults; a bad port
	// is asked again.
	answers := strings.Join([]string{
		"collector.example.com", // consumer address
		"99999",                 // consumer port: refused
		"7443",                  // consumer port
		"web9",                  // node
		"",                      // CA directory: the default ./certs
		"",                      // e-mail: sysmon@web9
		"10s",                   // interval
		"",                      // spool dir: default
		"127.0.0.1:9465",        // metrics
		"agent.env",             // out
	}, "\n") + "\n"
	code, stdout, stderr := runCLIIn(t, strings.NewReader(answers), "setup", "producer", "--interactive")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Consumer address [127.0.0.1]:", "✗ \"99999\" is not a port", "CA directory [certs]:", "Certificate owner e-mail [sysmon@web9]:", "issued client certificate", "wrote agent.env"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	env := readEnv(t, "agent.env")
	want := map[string]string{"PRODUCER_IP": "collector.example.com", "PRODUCER_PORT": "7443", "PRODUCER_NODE": "web9", "PRODUCER_INTERVAL": "10s", "PRODUCER_METRICS_ADDR": "127.0.0.1:9465", "PRODUCER_SPOOL_DIR": ""}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.Contains(env["PRODUCER_CERTFILE"], "sysmon@web9_") {
		t.Errorf("PRODUCER_CERTFILE = %q", env["PRODUCER_CERTFILE"])
	}

	// Input that ends early writes nothing and says so (exit 2).
	code, _, stderr = runCLIIn(t, strings.NewReader("10.0.0.1\n"), "setup", "producer", "--interactive", "--out", "short.env")
	if code != 2 || !strings.Contains(stderr, "input ended") {
		t.Errorf("short input: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat("short.env"); err == nil {
		t.Error("short input wrote a file")
	}
}

// TestSetupOnTerminal drives the guided consumer setup through a real
// pseudo-terminal: no flags but --out, so it must ask because stdin is a
// terminal.
func TestSetupOnTerminal(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer tty.Close()

	var errb bytes.Buffer
	root := newRootCmd(tty, &errb)
	root.SetIn(tty)
	root.SetArgs([]string{"setup", "consumer", "--out", "collector.env"})
	done := make(chan int, 1)
	go func() { done <- report(&errb, root.Execute()) }()

	term := &expecter{t: t, r: master}
	go term.pump()
	for _, step := range []struct{ prompt, answer string }{
		{"Listen address [0.0.0.0]: ", ""},
		{"Listen port [8443]: ", "9443"},
		{"CA directory: ", "-"}, // no CA here: use existing files
		{"CA certificate [certs/certs/cacert.pem]: ", "/etc/sysmon/ca.pem"},
		{"Server certificate [certs/certs/server.crt]: ", ""},
		{"Server key [certs/certs/server.key]: ", ""},
		{"CRL directory [certs/crl]: ", "-"},
		{"Database URL: ", "postgres://sm:pw@127.0.0.1:5432/sm"},
		{"Metrics address: ", "127.0.0.1:9464"},
		{"Write to [collector.env]: ", ""},
	} {
		term.expect(step.prompt)
		if _, err := master.Write([]byte(step.answer + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("setup did not finish; screen:\n%s", term.screen())
	}
	term.expect("wrote collector.env")
	if !strings.Contains(term.screen(), "does not exist yet") {
		t.Errorf("no warning for a missing certificate file:\n%s", term.screen())
	}
	env := readEnv(t, "collector.env")
	absCert, _ := filepath.Abs("certs/certs/server.crt") // setup stores paths absolute
	for k, v := range map[string]string{
		"CONSUMER_LISTEN_IP": "0.0.0.0", "CONSUMER_LISTEN_PORT": "9443", "CONSUMER_CACERTFILE": "/etc/sysmon/ca.pem",
		"CONSUMER_CERTFILE": absCert, "CONSUMER_CRLDIR": "", "CONSUMER_DB_URL": "postgres://sm:pw@127.0.0.1:5432/sm",
		"CONSUMER_METRICS_ADDR": "127.0.0.1:9464",
	} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if fi, _ := os.Stat("collector.env"); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v for a file with a password", fi.Mode().Perm())
	}
}

// expecter collects what the terminal shows and waits for text on it.
type expecter struct {
	t    *testing.T
	r    io.Reader
	mu   sync.Mutex
	buf  bytes.Buffer
	seen int
}

func (e *expecter) pump() {
	b := make([]byte, 4096)
	for {
		n, err := e.r.Read(b)
		e.mu.Lock()
		e.buf.Write(b[:n])
		e.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (e *expecter) screen() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.buf.String()
}

// expect waits until s appears after what earlier expects consumed.
func (e *expecter) expect(s string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		all := e.buf.String()
		i := strings.Index(all[e.seen:], s)
		if i >= 0 {
			e.seen += i + len(s)
		}
		e.mu.Unlock()
		if i >= 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("terminal never showed %q; screen:\n%s", s, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSetupCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	// A plain-HTTP stand-in for a consumer without TLS: the check needs
	// only an HTTP answer after the handshake.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUpgradeRequired) }))
	defer srv.Close()
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.env", fmt.Sprintf("PRODUCER_IP=%q\nPRODUCER_PORT=%q\nPRODUCER_USE_TLS=\"false\"\nPRODUCER_SPOOL_DIR=%q\n", host, port, dir))
	typo := write("typo.env", fmt.Sprintf("PRODUCER_IP=%q\nPRODUCER_PORTT=%q\nPRODUCER_USE_TLS=\"false\"\n", host, port))

	code, stdout, stderr := runCLIIn(t, nil, "setup", "check", good)
	if code != 0 || !strings.Contains(stdout, "0 failed") {
		t.Errorf("good file: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLIIn(t, nil, "setup", "--check", typo)
	if code != 1 || !strings.Contains(stdout, "✗ PRODUCER_PORTT: unknown key (did you mean PRODUCER_PORT?) — fix: rename it to PRODUCER_PORT") {
		t.Errorf("typo: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLIIn(t, nil, "setup", "check", filepath.Join(dir, "none.env"))
	if code != 2 || !strings.Contains(stderr, "env file not found") {
		t.Errorf("missing file: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLIIn(t, nil, "setup", "check", good, "--role", "collector")
	if code != 2 || !strings.Contains(stderr, "--role") {
		t.Errorf("bad role: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLIIn(t, nil, "setup")
	if code != 2 || !strings.Contains(stderr, "name a role") {
		t.Errorf("bare setup: exit %d: %s", code, stderr)
	}
	code, _, _ = runCLIIn(t, nil, "setup", "collector")
	if code != 2 {
		t.Errorf("unknown role: exit %d", code)
	}
}

// TestSystemdUnits holds the shipped unit files to what the binary and the
// config accept: the ExecStart command line parses, every Environment= key
// is one sysmon reads, and systemd itself finds nothing wrong.
func TestSystemdUnits(t *testing.T) {
	for _, unit := range []string{"sysmon-consumer.service", "sysmon-producer.service"} {
		t.Run(unit, func(t *testing.T) {
			path := filepath.Join("..", "config", "systemd", unit)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
				"NoNewPrivileges=yes", "CapabilityBoundingSet=", "StateDirectory=sysmon", "Restart=always", "RestartPreventExitStatus=2", "LoadCredential="} {
				if !strings.Contains(text, "\n"+want) {
					t.Errorf("%s lacks %s", unit, want)
				}
			}
			for _, line := range strings.Split(text, "\n") {
				switch {
				case strings.HasPrefix(line, "ExecStart="):
					args := strings.Fields(strings.TrimPrefix(line, "ExecStart="))[1:]
					root := newRootCmd(io.Discard, io.Discard)
					c, rest, err := root.Find(args)
					if err != nil {
						t.Fatalf("ExecStart %v: %v", args, err)
					}
					if err := c.ParseFlags(rest); err != nil {
						t.Errorf("ExecStart flags %v: %v", rest, err)
					}
				case strings.HasPrefix(line, "Environment="):
					key, _, _ := strings.Cut(strings.TrimPrefix(line, "Environment="), "=")
					if _, ok := config.LookupKey(key); !ok && !strings.HasPrefix(key, "XDG_") {
						t.Errorf("Environment=%s: not a key sysmon reads", key)
					}
				}
			}
			analyze, err := exec.LookPath("systemd-analyze")
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatal("systemd-analyze not found; install systemd")
				}
				t.Skip("systemd-analyze not found")
			}
			// verify insists that ExecStart names an executable: point it at
			// this test binary.
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			copyPath := filepath.Join(t.TempDir(), unit)
			if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(text, "/usr/local/bin/sysmon", self)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}
