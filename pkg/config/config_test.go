package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inDir copies a seed env file into a temp dir with the files it names, and
// runs the test from there (the original resolved paths from the cwd).
func inDir(t *testing.T, seed string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "env", seed))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, seed), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return seed
}

func noEnv(string) (string, bool) { return "", false }

func TestSeedProducerFile(t *testing.T) {
	path := inDir(t, "seed_producer.env", "cacert.pem", "client.pem")
	c, err := LoadProducer(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.URLs, []string{"wss://127.0.0.1:8443/"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("URLs = %v, want %v", got, want)
	}
	if c.CertFile != "client.pem" || c.CACertFile != "cacert.pem" || !c.UseTLS {
		t.Errorf("certs not read: %+v", c)
	}
	if c.Interval != 2*time.Second || c.TopN != 10 || c.SuspectRSS != 524288000 || c.MaxProcs != 15000 {
		t.Errorf("defaults wrong: %+v", c)
	}
	if c.SpoolMaxBytes != 256<<20 {
		t.Errorf("SpoolMaxBytes = %d", c.SpoolMaxBytes)
	}
}

func TestSeedConsumerFile(t *testing.T) {
	path := inDir(t, "seed_consumer.env", "cacert.pem", "server.crt", "server.key", "crl/x.r0")
	c, err := LoadConsumer(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "0.0.0.0:8443" || c.CRLDir != "crl" || c.KeyFile != "server.key" {
		t.Errorf("got %+v", c)
	}
	if c.RetentionDays != 10 || c.PartitionDaysAhead != 10 {
		t.Errorf("defaults wrong: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	path := inDir(t, "seed_producer.env", "cacert.pem", "client.pem")
	t.Setenv("PRODUCER_PORT", "9000")
	t.Setenv("PRODUCER_TOP_N", "7")
	c, err := LoadProducer(path, map[string]string{"PRODUCER_PORT": "9100"})
	if err != nil {
		t.Fatal(err)
	}
	if c.URLs[0] != "wss://127.0.0.1:9100/" {
		t.Errorf("flag should win over env and file: %v", c.URLs)
	}
	if c.TopN != 7 {
		t.Errorf("env should win over default: %d", c.TopN)
	}
}

func TestConfigErrorsNameFileAndKey(t *testing.T) {
	cases := []struct {
		name, line, wantKey, wantMsg string
	}{
		{"typo", `PRODUCER_PORTT="1"`, "PRODUCER_PORTT", "did you mean PRODUCER_PORT"},
		{"bad port", `PRODUCER_PORT="http"`, "PRODUCER_PORT", "not a number"},
		{"port range", `PRODUCER_PORT="70000"`, "PRODUCER_PORT", "not a number in range"},
		{"disabled", `PRODUCER_ENABLE="false"`, "PRODUCER_ENABLE", "disabled"},
		{"bad bool", `PRODUCER_USE_TLS="maybe"`, "PRODUCER_USE_TLS", "not a boolean"},
		{"bad interval", `PRODUCER_INTERVAL="soon"`, "PRODUCER_INTERVAL", "not a valid duration"},
		{"missing cert", `PRODUCER_CERTFILE="nope.pem"`, "PRODUCER_CERTFILE", "no such file"},
		{"bad url", `PRODUCER_URLS="http://x"`, "PRODUCER_URLS", "not a ws://"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := inDir(t, "seed_producer.env", "cacert.pem", "client.pem")
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.line + "\n")
			f.Close()
			_, err = LoadProducer(path, nil)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error, got %v", err)
			}
			if ce.Key != tc.wantKey || !strings.Contains(ce.Error(), tc.wantMsg) || !strings.Contains(ce.Error(), path) {
				t.Errorf("error %q (key %s), want key %s and %q and the file name", ce, ce.Key, tc.wantKey, tc.wantMsg)
			}
			if ce.Hint() == "" {
				t.Error("no fix given")
			}
		})
	}
}

func TestMissingEnvFile(t *testing.T) {
	_, err := LoadConsumer(filepath.Join(t.TempDir(), "absent.env"), nil)
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "not found") {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownForeignKeyIsWarning(t *testing.T) {
	path := inDir(t, "seed_producer.env", "cacert.pem", "client.pem")
	os.WriteFile(path, append(mustRead(t, path), []byte("ERL_FLAGS=\"+K true\"\n")...), 0o600)
	c, err := LoadProducer(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "ERL_FLAGS") {
		t.Errorf("warnings = %v", c.Warnings)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"10": 10, "1KiB": 1024, "256MiB": 256 << 20, "2G": 2 << 30, "5 MB": 5 << 20} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "99999999999TiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", in)
		}
	}
}

func FuzzReadEnvFile(f *testing.F) {
	for _, s := range []string{"seed_producer.env", "seed_consumer.env"} {
		b, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "env", s))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.env")
		os.WriteFile(p, data, 0o600)
		s, err := NewSource(p, RoleProducer, nil)
		if err != nil {
			return
		}
		s.LookupEnv = noEnv
		pr := &parser{s: s}
		pr.int("PRODUCER_PORT", 1, 65535)
		pr.duration("PRODUCER_INTERVAL", 0)
		pr.bytes("PRODUCER_SPOOL_MAX_BYTES")
	})
}

func TestRenderRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "consumer.env")
	vals := map[string]string{"CONSUMER_LISTEN_PORT": "9443", "CONSUMER_DB_URL": `postgres://u:p"$x@h/db`}
	if _, err := WriteEnvFile(path, RoleConsumer, vals); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file holding a password has mode %v, want 0600", st.Mode().Perm())
	}
	m, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range vals {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if len(m) != len(vals) {
		t.Errorf("unset keys should be commented out, got %v", m)
	}
	backup, err := WriteEnvFile(path, RoleConsumer, vals)
	if err != nil || backup == "" {
		t.Fatalf("second write: backup %q, %v", backup, err)
	}
	if _, err := os.Stat(backup); err != nil {
		t.Error(err)
	}
}

func TestEnvFileQuirks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	// A byte-order mark, CRLF line endings, export prefixes, single quotes.
	m, err := ReadEnvFile(write("bom.env", "\xef\xbb\xbfPRODUCER_IP=\"a\"\r\nexport PRODUCER_PORT='9'\r\nPRODUCER_NODE=n # comment\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m["PRODUCER_IP"] != "a" || m["PRODUCER_PORT"] != "9" || m["PRODUCER_NODE"] != "n" {
		t.Errorf("got %v", m)
	}
	// A parse error names the line and never echoes the file (secrets).
	_, err = ReadEnvFile(write("bad.env", "CONSUMER_LISTEN_PORT=1\noops\nCONSUMER_DB_URL=\"postgres://u:SuperSecret@h/db\"\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "SuperSecret") {
		t.Errorf("got %v", err)
	}
}

func TestUnclosedQuoteNeverEchoesTheNextLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.env")
	os.WriteFile(p, []byte("CONSUMER_LISTEN_PORT=\"1\nCONSUMER_DB_URL=postgres://u:SuperSecret123@h/db\nCONSUMER_RETENTION_DAYS=\"\n"), 0o600)
	_, err := LoadConsumer(p, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "CONSUMER_LISTEN_PORT" || !strings.Contains(ce.Error(), "line 1") || strings.Contains(ce.Error(), "SuperSecret") {
		t.Errorf("got %v", err)
	}
}
