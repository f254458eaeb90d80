package cmd

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedDeps holds the architecture in one place: data flows collect ->
// transport -> sink as wire types; the concern packages do not import each
// other, only cmd wires them together; and each package reaches only the
// outside modules its concern needs (wire and pki: the standard library
// alone).
var allowedDeps = map[string]struct {
	internal []string // sysmon packages
	modules  []string // third-party module paths
}{
	"pkg/wire":       {},
	"pkg/pki":        {},
	"pkg/config":     {modules: []string{"github.com/joho/godotenv"}},
	"pkg/pgserver":   {modules: []string{"github.com/jackc/pgx/v5"}},
	"pkg/collect":    {[]string{"pkg/wire"}, []string{"github.com/prometheus/procfs", "golang.org/x/sys"}},
	"pkg/transport":  {[]string{"pkg/wire"}, []string{"github.com/coder/websocket"}},
	"pkg/spool":      {[]string{"pkg/wire"}, []string{"golang.org/x/sys"}},
	"pkg/sink/pg":    {[]string{"pkg/wire"}, []string{"github.com/jackc/pgx/v5"}},
	"pkg/sink/jsonl": {internal: []string{"pkg/wire"}},
	"pkg/metrics":    {[]string{"pkg/wire"}, []string{"github.com/prometheus/client_golang"}},
	"pkg/pgtest":     {internal: []string{"pkg/pgserver"}},
	"pkg/doctor":     {[]string{"pkg/config", "pkg/pki", "pkg/pgserver"}, []string{"github.com/jackc/pgx/v5"}},
	"pkg/setup":      {internal: []string{"pkg/config", "pkg/pki"}},
}

func TestPackageDependencies(t *testing.T) {
	const mod = "github.com/sysmon/sysmon/"
	// Every GOOS build, so that a platform file cannot slip past the rules.
	for _, goos := range []string{"linux", "darwin", "windows"} {
		cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../pkg/...")
		cmd.Env = append(cmd.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
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
				switch {
				case strings.HasPrefix(imp, mod):
					if dep := strings.TrimPrefix(imp, mod); !slices.Contains(allowed.internal, dep) {
						t.Errorf("%s (%s) imports %s, which it must not", pkg, goos, dep)
					}
				case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
					if !slices.ContainsFunc(allowed.modules, func(m string) bool { return imp == m || strings.HasPrefix(imp, m+"/") }) {
						t.Errorf("%s (%s) imports the module %s, which it must not", pkg, goos, imp)
					}
				}
			}
		}
	}
}
