package cmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/pki"
)

// mintPKI makes a CA with a server certificate for 127.0.0.1 and a client
// PEM, the way `sysmon ca` does, and returns their paths.
func mintPKI(t *testing.T, dir string) (cacert, serverCrt, serverKey, clientPEM string) {
	t.Helper()
	ca, err := pki.Init(filepath.Join(dir, "certs"), pki.InitOptions{CN: "test CA"})
	if err != nil {
		t.Fatal(err)
	}
	serverCrt, serverKey, err = ca.IssueServer([]string{"127.0.0.1"}, pki.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clientPEM, err = ca.IssueClient("producer", "ops@example.com", nil, pki.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca.Path("certs/cacert.pem"), serverCrt, serverKey, clientPEM
}

// writeConsumerEnv writes a consumer env file listening on 127.0.0.1:port
// with the given certificates and no CRL directory; extra lines (KEY="value")
// are appended.
func writeConsumerEnv(t *testing.T, path string, port int, cacert, crt, key string, extra ...string) {
	t.Helper()
	content := fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%s"
CONSUMER_CERTFILE="%s"
CONSUMER_KEYFILE="%s"
CONSUMER_CRLDIR=""
`, port, cacert, crt, key)
	for _, l := range extra {
		content += l + "\n"
	}
	writeFile(t, path, content)
}

func producerEnv(t *testing.T, dir string, port int, cacert, clientPEM string) string {
	t.Helper()
	path := filepath.Join(dir, "producer.env")
	writeFile(t, path, fmt.Sprintf(`PRODUCER_IP="127.0.0.1"
PRODUCER_PORT="%d"
PRODUCER_CACERTFILE="%s"
PRODUCER_CERTFILE="%s"
PRODUCER_INTERVAL="300ms"
PRODUCER_SPOOL_DIR="%s"
`, port, cacert, clientPEM, filepath.Join(dir, "spool")))
	return path
}

// pythonWithWebsockets finds an interpreter that can import websockets.
func pythonWithWebsockets(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SYSMON_PYTHON"), "python3", "/usr/bin/python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import websockets").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no python3 with the websockets module (apt-get install python3-websockets)")
	}
	t.Skip("no python3 with the websockets module")
	return ""
}

// TestPythonJSONConsumer runs the example third-party consumer (stock Python
// websockets, the sysmon.v1+json subprotocol, mutual TLS) against the real
// producer binary.
func TestPythonJSONConsumer(t *testing.T) {
	python := pythonWithWebsockets(t)
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	port := freeTCPPort(t)
	script, _ := filepath.Abs("../testdata/examples/json_consumer.py")
	py := exec.Command(python, script, "--port", fmt.Sprint(port), "--cert", crt, "--key", key, "--ca", cacert)
	stdout, _ := py.StdoutPipe()
	stderr := &syncBuffer{}
	py.Stderr = stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		py.Process.Kill()
		py.Wait()
		if t.Failed() {
			t.Logf("python stderr:\n%s", stderr)
		}
	})
	startSysmon(t, dir, "produce", "--env", producerEnv(t, dir, port, cacert, clientPEM), "--log-format", "text")

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	node, _ := os.Hostname()
	want := memTotalBytes(t)
	timeout := time.After(30 * time.Second)
	for got := 0; got < 3; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the python consumer exited")
			}
			var rec struct {
				Node     string `json:"node"`
				Seq      uint64 `json:"seq"`
				MemTotal int64  `json:"mem_total"`
				Procs    int    `json:"procs"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("python printed %q: %v", line, err)
			}
			if rec.Node != node || rec.MemTotal != want || rec.Procs == 0 {
				t.Errorf("python consumer read %+v, want node %s, mem_total %d and processes", rec, node, want)
			}
			got++
		case <-timeout:
			t.Fatal("no samples reached the python consumer in 30s")
		}
	}
}

// TestConsumeJSONLines checks `consume --output jsonl` end to end.
func TestConsumeJSONLines(t *testing.T) {
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	port := freeTCPPort(t)
	writeConsumerEnv(t, filepath.Join(dir, "consumer.env"), port, cacert, crt, key)
	out := filepath.Join(dir, "samples.jsonl")
	startSysmon(t, dir, "consume", "--env", "consumer.env", "--output", "jsonl", "--output-file", out, "--log-format", "text")
	startSysmon(t, dir, "produce", "--env", producerEnv(t, dir, port, cacert, clientPEM), "--log-format", "text")

	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) >= 3 {
			var prev uint64
			for _, l := range lines {
				var rec struct {
					Node    string            `json:"node"`
					Seq     uint64            `json:"seq"`
					Samples []json.RawMessage `json:"samples"`
				}
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if rec.Seq <= prev || len(rec.Samples) == 0 || rec.Node == "" {
					t.Errorf("line out of order or empty: %s", l[:min(len(l), 200)])
				}
				prev = rec.Seq
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d lines in %s after 30s", len(lines), out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsumeJSONLinesReaderGone: `consume --output jsonl | head -2` stops
// with a message and exit code 1 when its reader goes away, instead of dying
// silently of SIGPIPE; what was not written stays unacknowledged.
func TestConsumeJSONLinesReaderGone(t *testing.T) {
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	port := freeTCPPort(t)
	writeConsumerEnv(t, filepath.Join(dir, "consumer.env"), port, cacert, crt, key)
	cmd := exec.Command(sysmonBinary(t), "consume", "--env", "consumer.env", "--output", "jsonl", "--log-format", "text")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	startSysmon(t, dir, "produce", "--env", producerEnv(t, dir, port, cacert, clientPEM), "--log-format", "text")
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; i < 2; i++ {
		if !sc.Scan() {
			t.Fatalf("no line %d: %v\n%s", i+1, sc.Err(), stderr)
		}
	}
	stdout.Close() // the reader goes away, as `head` does
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("consumer still running after its output closed:\n%s", stderr)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "jsonl output closed") {
		t.Errorf("exit %d (%v), want 1 and a message:\n%s", code, cmd.ProcessState, stderr)
	}
}
