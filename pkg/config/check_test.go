package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDetectRole(t *testing.T) {
	for _, tc := range []struct {
		file map[string]string
		want Role
		err  string
	}{
		{map[string]string{"CONSUMER_LISTEN_PORT": "1", "OTHER": "x"}, RoleConsumer, ""},
		{map[string]string{"PRODUCER_PORTT": "1"}, RoleProducer, ""},
		{map[string]string{"PORT": "1"}, "", "not a sysmon env file"},
		{map[string]string{}, "", "not a sysmon env file"},
		{map[string]string{"PRODUCER_IP": "a", "CONSUMER_LISTEN_IP": "b"}, "", "1 CONSUMER_* and 1 PRODUCER_*"},
	} {
		got, err := DetectRole(tc.file)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("DetectRole(%v) = %q, %v; want %q, %q", tc.file, got, err, tc.want, tc.err)
		}
	}
}

func TestCheckKeys(t *testing.T) {
	got := CheckKeys(map[string]string{
		"PRODUCER_PORTT":       "8443", // typo
		"PRODUCER_WHATEVER":    "x",    // unknown, not near anything
		"CONSUMER_LISTEN_PORT": "1",    // the other role's
		"PRODUCER_IP":          "h",    // fine
		"EDITOR":               "vi",   // not ours
	}, RoleProducer)
	names := []string{}
	for _, u := range got {
		names = append(names, u.Name)
	}
	if want := []string{"CONSUMER_LISTEN_PORT", "EDITOR", "PRODUCER_PORTT", "PRODUCER_WHATEVER"}; !slices.Equal(names, want) {
		t.Fatalf("unknown keys %v, want %v", names, want)
	}
	if u := got[2]; !u.Typo || u.Closest != "PRODUCER_PORT" || u.Distance != 1 {
		t.Errorf("PRODUCER_PORTT: %+v", u)
	}
	if u := got[3]; u.Typo {
		t.Errorf("PRODUCER_WHATEVER counted as a typo: %+v", u)
	}
	if u := got[0]; u.OtherRole != RoleConsumer {
		t.Errorf("CONSUMER_LISTEN_PORT: %+v", u)
	}
	if u := got[1]; u.Typo || u.Closest == "" {
		t.Errorf("EDITOR: %+v", u)
	}
	if k, d := ClosestKey("CONSUMER_LISTEN_PRT", RoleConsumer); k != "CONSUMER_LISTEN_PORT" || d != 1 {
		t.Errorf("ClosestKey = %s %d", k, d)
	}
}

func writeEnv(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	path := filepath.Join(dir, "x.env")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func errKeys(errs []*Error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Key)
	}
	return out
}

func TestLoadProducerAllReportsEveryBadValue(t *testing.T) {
	path := writeEnv(t, `PRODUCER_PORT="80800"
PRODUCER_PORTT="8443"
PRODUCER_CACERTFILE="missing-ca.pem"
PRODUCER_INTERVAL="fast"
PRODUCER_TOP_N="10"
PRODUCER_ENABLE="false"
`)
	c, errs := LoadProducerAll(path)
	want := []string{"PRODUCER_ENABLE", "PRODUCER_PORT", "PRODUCER_CACERTFILE", "PRODUCER_CERTFILE", "PRODUCER_INTERVAL"}
	if got := errKeys(errs); !slices.Equal(got, want) {
		t.Fatalf("error keys %v, want %v (%v)", got, want, errs)
	}
	for _, e := range errs {
		if e.Key == "PRODUCER_CERTFILE" {
			if e.File != "default" || !strings.Contains(e.Msg, "required") {
				t.Errorf("unset required key: %+v", e)
			}
			continue
		}
		if e.File != path || e.Hint() == "" {
			t.Errorf("error %+v: want the file named and a fix", e)
		}
	}
	if c == nil || c.File != path || c.TopN != 10 {
		t.Errorf("settings after errors: %+v", c)
	}
}

func TestLoadConsumerAll(t *testing.T) {
	path := writeEnv(t, `CONSUMER_LISTEN_IP="0.0.0.0"
CONSUMER_USE_TLS="false"
CONSUMER_DB_URL="mysql://x"
CONSUMER_RETENTION_DAYS="0"
`)
	c, errs := LoadConsumerAll(path)
	if got, want := errKeys(errs), []string{"CONSUMER_DB_URL", "CONSUMER_RETENTION_DAYS"}; !slices.Equal(got, want) {
		t.Fatalf("error keys %v, want %v", got, want)
	}
	if c == nil || c.ListenAddr != "0.0.0.0:8443" {
		t.Errorf("settings: %+v", c)
	}

	good := writeEnv(t, `CONSUMER_USE_TLS="false"`+"\n")
	if _, errs := LoadConsumerAll(good); len(errs) != 0 {
		t.Errorf("good file: %v", errs)
	}
	if _, errs := LoadConsumerAll(filepath.Join(t.TempDir(), "none.env")); len(errs) != 1 || !strings.Contains(errs[0].Msg, "not found") {
		t.Errorf("missing file: %v", errs)
	}
}
