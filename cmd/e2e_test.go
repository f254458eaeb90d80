package cmd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
)

// The end-to-end tests run the real sysmon binary against a real PostgreSQL
// and the real /proc. TestMain doubles as a memory hog child process so the
// tests can place a known large process on the host.
func TestMain(m *testing.M) {
	if mb := os.Getenv("SYSMON_TEST_HOG_MB"); mb != "" {
		hog(mb)
		return
	}
	pgtest.Main(m)
}

// hog holds n MiB of touched memory until killed.
func hog(mb string) {
	n, _ := strconv.Atoi(mb)
	buf := make([]byte, n<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	fmt.Println("ready")
	time.Sleep(10 * time.Minute)
	buf[0] = 2
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sysmonBinary builds the binary once per test run.
func sysmonBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sysmon-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sysmon")
		out, err := exec.Command("go", "build", "-o", binPath, "..").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a running sysmon command whose output is kept for the test log.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSysmon(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(sysmonBinary(t), args...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("sysmon %s output:\n%s", strings.Join(args, " "), out)
		}
	})
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// originalCA lays out certificates as the original tool's openssl CA did:
// an EC P-384 CA, a server certificate with a CN and no subjectAltName, a
// client key and certificate in one PEM (key first), and a CRL directory with
// a <hash>.r0 link. It returns the directory.
func originalCA(t *testing.T, dir string) {
	t.Helper()
	openssl := requireTool(t, "openssl")
	for _, d := range []string{"certs", "private", "client_keys", "crl"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "index.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "crlnumber"), []byte("01\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "openssl.cnf"), []byte(`[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
crlnumber = ./crlnumber
default_md = sha384
default_crl_days = 30
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
[ v3_client ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`), 0o644)
	o := func(args ...string) { run(t, dir, openssl, args...) }
	o("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "private/cakey.pem")
	o("req", "-new", "-x509", "-key", "private/cakey.pem", "-out", "certs/cacert.pem", "-days", "30", "-subj", "/O=system_monitor/CN=system_monitor CA", "-config", "openssl.cnf", "-extensions", "v3_ca")
	// Server: CN only, no subjectAltName.
	o("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "certs/server.key")
	o("req", "-new", "-key", "certs/server.key", "-out", "server.csr", "-subj", "/O=system_monitor/CN=consumer.internal", "-config", "openssl.cnf")
	o("x509", "-req", "-in", "server.csr", "-CA", "certs/cacert.pem", "-CAkey", "private/cakey.pem", "-CAcreateserial", "-out", "certs/server.crt", "-days", "30", "-extfile", "openssl.cnf", "-extensions", "v3_server")
	// Client: key and certificate concatenated in one PEM, key first.
	o("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "client.key")
	o("req", "-new", "-key", "client.key", "-out", "client.csr", "-subj", "/O=system_monitor/CN=producer/emailAddress=ops@example.com", "-config", "openssl.cnf")
	o("x509", "-req", "-in", "client.csr", "-CA", "certs/cacert.pem", "-CAkey", "private/cakey.pem", "-CAcreateserial", "-out", "client.crt", "-days", "30", "-extfile", "openssl.cnf", "-extensions", "v3_client")
	key, _ := os.ReadFile(filepath.Join(dir, "client.key"))
	crt, _ := os.ReadFile(filepath.Join(dir, "client.crt"))
	os.WriteFile(filepath.Join(dir, "client_keys", "ops@example.com_20261203.pem"), append(key, crt...), 0o600)
	// CRL and its hash link, as `openssl rehash` / c_rehash lay it out.
	o("ca", "-config", "openssl.cnf", "-gencrl", "-keyfile", "private/cakey.pem", "-cert", "certs/cacert.pem", "-out", "crl/crl.pem")
	hash := strings.TrimSpace(run(t, dir, openssl, "crl", "-in", "crl/crl.pem", "-noout", "-hash"))
	if err := os.Symlink("crl.pem", filepath.Join(dir, "crl", hash+".r0")); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func memTotalBytes(t *testing.T) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

func waitRows(t *testing.T, conn *pgx.Conn, d time.Duration, what, query string, args ...any) int64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var n int64
		err := conn.QueryRow(context.Background(), query, args...).Scan(&n)
		if err == nil && n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error %v)", d, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEndToEndWithOriginalLayout runs consume and produce with env files
// written as the original tool's (seed keys, quoted values) and certificates
// laid out as its CA does, and checks that a node's rows land.
func TestEndToEndWithOriginalLayout(t *testing.T) {
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	originalCA(t, dir)
	port := freeTCPPort(t)
	writeFile(t, filepath.Join(dir, "consumer.env"), fmt.Sprintf(`# seed consumer.env
CONSUMER_ENABLE="true"
CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_USE_TLS="true"
CONSUMER_CACERTFILE="certs/cacert.pem"
CONSUMER_CERTFILE="certs/server.crt"
CONSUMER_KEYFILE="certs/server.key"
CONSUMER_CRLDIR="crl"
CONSUMER_DB_URL="%s"
`, port, dbURL))
	writeFile(t, filepath.Join(dir, "producer.env"), fmt.Sprintf(`# seed producer.env
PRODUCER_ENABLE="true"
PRODUCER_IP="127.0.0.1"
PRODUCER_PORT="%d"
PRODUCER_USE_TLS="true"
PRODUCER_CACERTFILE="certs/cacert.pem"
PRODUCER_CERTFILE="client_keys/ops@example.com_20261203.pem"
PRODUCER_INTERVAL="1s"
PRODUCER_SPOOL_DIR="spool"
`, port))

	// A process with a known, large RSS for the top set.
	hog := exec.Command(os.Args[0], "-test.run=^$")
	hog.Env = append(os.Environ(), "SYSMON_TEST_HOG_MB=300")
	hogOut, _ := hog.StdoutPipe()
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hog.Process.Kill(); hog.Wait() })
	if line, _ := bufio.NewReader(hogOut).ReadString('\n'); line != "ready\n" {
		t.Fatalf("hog said %q", line)
	}

	startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	startSysmon(t, dir, "produce", "--env", "producer.env", "--log-format", "text")

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	node, _ := os.Hostname()
	waitRows(t, conn, 60*time.Second, "3 samples in host", `SELECT count(*) FROM host WHERE node = $1 HAVING count(*) >= 3`, node)
	for _, table := range []string{"prc", "memory", "node_role"} {
		waitRows(t, conn, 10*time.Second, "rows in "+table, `SELECT count(*) FROM `+table+` WHERE node = $1`, node)
	}
	var total int64
	conn.QueryRow(ctx, `SELECT total FROM memory WHERE node = $1 ORDER BY ts DESC LIMIT 1`, node).Scan(&total)
	if want := memTotalBytes(t); total != want {
		t.Errorf("memory.total = %d, want MemTotal %d", total, want)
	}
	var rss int64
	if err := conn.QueryRow(ctx, `SELECT max(rss) FROM prc WHERE node = $1 AND pid = $2`, node, hog.Process.Pid).Scan(&rss); err != nil || rss < 300<<20 {
		t.Errorf("the 300 MiB process (pid %d) is not in prc with its RSS: rss=%d err=%v", hog.Process.Pid, rss, err)
	}
	var status string
	conn.QueryRow(ctx, `SELECT data FROM node_role WHERE node = $1 ORDER BY ts DESC LIMIT 1`, node).Scan(&status)
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	if !strings.Contains(status, strings.TrimSpace(string(kernel))) {
		t.Errorf("node status does not name the kernel release %q:\n%s", kernel, status)
	}
}

// TestForeignCertificatesWriteNothing checks the handshake failures with the
// real binary: a producer whose certificate comes from another CA, and a TLS
// client without a certificate, are refused and nothing is stored.
func TestForeignCertificatesWriteNothing(t *testing.T) {
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	originalCA(t, dir)
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o755)
	originalCA(t, other)
	port := freeTCPPort(t)
	writeFile(t, filepath.Join(dir, "consumer.env"), fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="certs/cacert.pem"
CONSUMER_CERTFILE="certs/server.crt"
CONSUMER_KEYFILE="certs/server.key"
CONSUMER_CRLDIR="crl"
CONSUMER_DB_URL="%s"
`, port, dbURL))
	// Trusts the right CA for the server, presents the other CA's client.
	writeFile(t, filepath.Join(dir, "producer.env"), fmt.Sprintf(`PRODUCER_IP="127.0.0.1"
PRODUCER_PORT="%d"
PRODUCER_CACERTFILE="certs/cacert.pem"
PRODUCER_CERTFILE="other/client_keys/ops@example.com_20261203.pem"
PRODUCER_INTERVAL="200ms"
PRODUCER_NODE="intruder"
PRODUCER_SPOOL_DIR="spool"
`, port))
	consumer := startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	producer := startSysmon(t, dir, "produce", "--env", "producer.env", "--log-format", "text")

	// A client with no certificate at all.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			// TLS 1.3 reports the missing certificate on the first read.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("a client without certificate got: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer never listened: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM node) + (SELECT count(*) FROM host) + (SELECT count(*) FROM prc)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows stored from refused producers", n)
	}
	if !strings.Contains(producer.out.String(), "certificate") {
		t.Errorf("producer log does not say why it was refused:\n%s", producer.out)
	}
	if !strings.Contains(consumer.out.String(), "listening") {
		t.Errorf("consumer did not start:\n%s", consumer.out)
	}
}
