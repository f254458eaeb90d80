package cmd

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedDeps holds the architecture: data flows collect -> transport ->
// sink as wire types; the concern packages do not import each other, and
// only cmd wires them together.
var allowedDeps = map[string][]string{
	"pkg/wire":       {},
	"pkg/config":     {},
	"pkg/pki":        {},
	"pkg/pgserver":   {},
	"pkg/collect":    {"pkg/wire"},
	"pkg/transport":  {"pkg/wire"},
	"pkg/spool":      {"pkg/wire"},
	"pkg/sink/pg":    {"pkg/wire"},
	"pkg/sink/jsonl": {"pkg/wire"},
	"pkg/metrics":    {"pkg/wire"},
	"pkg/pgtest":     {"pkg/pgserver"},
	"pkg/doctor":     {"pkg/config", "pkg/pki", "pkg/pgserver"},
	"pkg/setup":      {"pkg/config", "pkg/pki"},
}

func TestPackageDependencies(t *testing.T) {
	const mod = "github.com/sysmon/sysmon/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../pkg/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		allowed, known := allowedDeps[pkg]
		if !known {
			t.Errorf("%s is not in allowedDeps: decide what it may import", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, mod) {
				if pkg == "pkg/wire" && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					t.Errorf("pkg/wire imports %s: it must stay standard library only", imp)
				}
				continue
			}
			if dep := strings.TrimPrefix(imp, mod); !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s, which it must not", pkg, dep)
			}
		}
	}
}
