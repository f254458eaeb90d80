package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runCLI runs the sysmon command line in-process and returns the exit code
// that Main would return.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	code = report(&errb, root.Execute())
	return code, out.String(), errb.String()
}

func TestCACommandWorkflow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, append(args, "--dir", dir)...)
		if code != 0 {
			t.Fatalf("sysmon %s: exit %d\n%s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	must("ca", "init", "--cn", "CLI CA", "--org", "Example", "--curve", "P-256")
	must("ca", "server", "--host", "localhost,127.0.0.1")
	bundle := filepath.Join(t.TempDir(), "web.tgz")
	pemPath := strings.TrimSpace(must("ca", "client", "--name", "web", "--email", "ops@example.com", "--node", "web1", "--node", "web2", "--bundle", bundle))
	if !strings.HasPrefix(pemPath, filepath.Join(dir, "client_keys", "ops@example.com_")) || !strings.HasSuffix(pemPath, ".pem") {
		t.Fatalf("client printed %q", pemPath)
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Fatal(err)
	}
	list := must("ca", "list")
	if !strings.Contains(list, "web1,web2") || strings.Count(list, "valid") != 3 {
		t.Fatalf("list:\n%s", list)
	}
	must("ca", "revoke", pemPath, "--reason", "keyCompromise")
	if list := must("ca", "list"); !strings.Contains(list, "revoked") || !strings.Contains(list, "keyCompromise") {
		t.Fatalf("list after revoke:\n%s", list)
	}
	must("ca", "crl", "--days", "7")

	// User mistakes exit 2, with a hint where one helps.
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"ca", "init"}, "--force"},
		{[]string{"ca", "server"}, ""},
		{[]string{"ca", "client", "--name", "x"}, ""},
		{[]string{"ca", "client", "--name", "web", "--email", "ops@example.com"}, "--force"},
		{[]string{"ca", "client", "--name", "x", "--email", "x@example.com", "--bundle", bundle}, "--force"},
		{[]string{"ca", "client", "--name", "x", "--email", "no-at-sign"}, ""},
		{[]string{"ca", "revoke", "ABCDEF"}, "ca list"},
		{[]string{"ca", "revoke", pemPath}, ""},
		{[]string{"ca", "revoke", pemPath, "--reason", "bogus"}, ""},
		{[]string{"ca", "revoke"}, ""},
		{[]string{"ca", "crl", "--days", "0"}, ""},
		{[]string{"ca", "bogus"}, ""},
		{[]string{"ca", "list", "--no-such-flag"}, ""},
	} {
		code, _, errs := runCLI(t, append(tc.args, "--dir", dir)...)
		if code != 2 || !strings.Contains(errs, "sysmon: error:") || (tc.hint != "" && !strings.Contains(errs, "sysmon: hint: ")) || !strings.Contains(errs, tc.hint) {
			t.Errorf("sysmon %s: exit %d, want 2\n%s", strings.Join(tc.args, " "), code, errs)
		}
	}
	code, _, errs := runCLI(t, "ca", "list", "--dir", filepath.Join(t.TempDir(), "none"))
	if code != 2 || !strings.Contains(errs, "sysmon ca init") {
		t.Errorf("list without CA: exit %d\n%s", code, errs)
	}
}

func TestCACommandsHaveExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newCACmd())
}
