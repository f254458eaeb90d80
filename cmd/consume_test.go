package cmd

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/pgtest"
)

func consumerEnvFile(t *testing.T, dir, dbURL string, extra string) string {
	t.Helper()
	cacert, crt, key, _ := mintPKI(t, dir)
	path := filepath.Join(dir, "consumer.env")
	writeConsumerEnv(t, path, freeTCPPort(t), cacert, crt, key, fmt.Sprintf("CONSUMER_DB_URL=%q", dbURL), extra)
	return path
}

// TestConsumeWaitsForDatabase: a database that is down at start is waited
// for, not fatal; the consumer starts serving once it is up.
func TestConsumeWaitsForDatabase(t *testing.T) {
	dir := t.TempDir()
	down := fmt.Sprintf("postgres://u:p@127.0.0.1:%d/db?connect_timeout=1", freeTCPPort(t))
	c := startSysmon(t, dir, "consume", "--env", consumerEnvFile(t, dir, down, ""), "--log-format", "text")
	time.Sleep(3 * time.Second)
	if c.cmd.ProcessState != nil {
		t.Fatalf("consumer exited while the database was down:\n%s", c.out)
	}
	if out := c.out.String(); !strings.Contains(out, "retrying") || strings.Count(out, "database not reachable") != 1 {
		t.Errorf("want one line saying it retries, got:\n%s", out)
	}
}

// TestConsumeWrongPasswordFailsFast: waiting cannot fix credentials.
func TestConsumeWrongPasswordFailsFast(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "wrong")
	dir := t.TempDir()
	cmd := exec.Command(sysmonBinary(t), "consume", "--env", consumerEnvFile(t, dir, u.String(), ""), "--log-format", "text")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "password authentication failed") {
		t.Errorf("exit %v, output:\n%s", err, out)
	}
}

// TestConfigErrorsExitTwo: every configuration mistake is one line naming
// the file and the key, with a hint, and exit code 2.
func TestConfigErrorsExitTwo(t *testing.T) {
	cases := []struct {
		name, role, extra, wantKey string
	}{
		{"disabled", "consume", `CONSUMER_ENABLE="false"`, "CONSUMER_ENABLE"},
		{"typo", "consume", `CONSUMER_LISTEN_PORTT="1"`, "CONSUMER_LISTEN_PORTT"},
		{"bad port", "consume", `CONSUMER_LISTEN_PORT="eighty"`, "CONSUMER_LISTEN_PORT"},
		{"missing key file", "consume", `CONSUMER_KEYFILE="/nonexistent/server.key"`, "CONSUMER_KEYFILE"},
		{"producer disabled", "produce", `PRODUCER_ENABLE="false"`, "PRODUCER_ENABLE"},
		{"producer missing cert", "produce", `PRODUCER_CERTFILE="nope.pem"`, "PRODUCER_CERTFILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var env string
			if tc.role == "consume" {
				env = consumerEnvFile(t, dir, "postgres://u:p@127.0.0.1:1/db", tc.extra)
			} else {
				cacert, _, _, pem := mintPKI(t, dir)
				env = producerEnv(t, dir, 1, cacert, pem)
				writeFile(t, env, readFile(t, env)+tc.extra+"\n")
			}
			cmd := exec.Command(sysmonBinary(t), tc.role, "--env", env)
			cmd.Dir = dir
			out, _ := cmd.CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("exit code %d, want 2; output:\n%s", code, out)
			}
			if len(lines) > 2 || !strings.HasPrefix(lines[0], "sysmon: error: "+env+": "+tc.wantKey+": ") {
				t.Errorf("want one error line naming %s and %s (plus a hint), got:\n%s", env, tc.wantKey, out)
			}
			if len(lines) == 2 && !strings.HasPrefix(lines[1], "sysmon: hint: ") {
				t.Errorf("second line is not a hint: %q", lines[1])
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
